from django.http import Http404


def room_list(request):  # the rooms pages are being written
    raise Http404("The rooms pages are not there yet.")


def room_week(request, pk):
    raise Http404("The rooms pages are not there yet.")
