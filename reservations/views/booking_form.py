from django.http import Http404


def book(request):  # the booking form is being written
    raise Http404("The booking form is not there yet.")


def check(request):
    raise Http404("The booking form is not there yet.")


def detail(request, pk):
    raise Http404("The booking page is not there yet.")


def ics(request, pk):
    raise Http404("The booking page is not there yet.")
