from django.http import Http404


def timeline(request):  # the availability timeline is being written
    raise Http404("The timeline is not there yet.")
