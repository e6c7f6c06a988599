"""API views: each reads its input through a serializer, calls the service or a query, and answers.

Domain errors (BookingError and its kin) are not caught here: errors.exception_handler turns
each into its status and the one error shape.
"""
from django.contrib.auth import authenticate
from django.db.models import Prefetch, prefetch_related_objects
from django.shortcuts import get_object_or_404
from django.urls import Resolver404, resolve
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action, api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..errors import NotAllowed
from ..models import Allocation, ApiToken, Booking, BookingSeries, Device, Room, Server, Unit, member_name
from ..selectors import booking_history
from . import serializers as s
from .availability import availability
from .errors import SignInThrottled
from .filters import BookingFilter, DeviceFilter
from .schema import error
from .throttles import AnonThrottle, TokenIssueThrottle
from .times import activate_member_zone, member_zone, query_of

NOT_FOUND_NAME = "api-not-found"
BOOKING_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The booking's id.")
ROOM_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The room's id.")
DEVICE_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The device's id.")
BOOKING_ERRORS = {
    409: error(
        "`conflict`: overlaps existing bookings, `conflicts` names each with its holder, times and purpose; "
        "`limit_exceeded`: over a fair-use limit, `limit` says which; `wrong_state`: the booking is cancelled, released "
        "or ended, or has (not) started for this (cancel one that has not started, release one that runs)."
    ),
    503: error("`busy`: others are booking the same units right now; try again in a moment (Retry-After)."),
}


class MemberZoneMixin:
    # Local times are read and written in the member's zone, known once DRF has authenticated them.

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        activate_member_zone(request.user)


def bookings_with_relations():
    """Bookings with what the serializer reads: a page costs three queries, whatever its size."""
    return Booking.objects.select_related("user__profile", "server", "room").prefetch_related(_gpu_allocations())


def _gpu_allocations():
    """A booking's GPU allocations, with their devices: what names the GPUs of a booking of some
    GPUs. A whole-server booking (nine allocations on an 8-GPU server) and a room need none."""
    gpus = (
        Allocation.objects.filter(unit__kind=Unit.Kind.GPU, booking__whole_server=False)
        .select_related("unit__device")
        .only("booking_id", "unit__device__index", "unit__device__server_id")
    )
    return Prefetch("allocations", gpus)


def _created(booking, now=None):
    """A booking just made, as the API shows it. Its user (the member, with profile), server and
    room are loaded already; only its GPUs are asked for."""
    prefetch_related_objects([booking], _gpu_allocations())
    return Response(s.BookingSerializer(booking, context={"now": now or timezone.now()}).data, status=status.HTTP_201_CREATED)


# --- who am I, and tokens ------------------------------------------------------------------


class MeView(MemberZoneMixin, APIView):
    """Who the token (or session) belongs to, and the time zone times without an offset are read in."""

    @extend_schema(responses=s.MeSerializer, summary="The member the request is made as")
    def get(self, request):
        user = request.user
        data = {
            "id": user.pk,
            "username": user.get_username(),
            "name": member_name(user),
            "email": user.email,
            "time_zone": str(member_zone(user)),
            "is_staff": user.is_staff,
        }
        return Response(s.MeSerializer(data).data)


class TokenView(APIView):
    """A user name and password for a new API token (for the CLI); throttled hard."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    throttle_classes = (AnonThrottle, TokenIssueThrottle)

    @extend_schema(request=s.TokenRequestSerializer, responses={201: s.TokenSerializer}, auth=[], summary="Exchange a user name and password for a token")
    def post(self, request):
        form = s.TokenRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = authenticate(request, username=form.validated_data["username"], password=form.validated_data["password"])
        refused = getattr(request, "signin_refused", None)
        if refused is not None:  # the guessing limits (reservations/signin.py) did not check the password
            raise SignInThrottled(refused)
        if user is None:
            raise ValidationError({"password": ["Wrong user name or password."]})
        token, key = ApiToken.issue(user, form.validated_data["name"] or "cli")
        return Response({"token": key, "name": token.name, "prefix": token.prefix}, status=status.HTTP_201_CREATED)


# --- servers, devices, rooms -------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Servers with their GPUs"),
    retrieve=extend_schema(
        summary="One server with its GPUs",
        parameters=[OpenApiParameter("name", str, OpenApiParameter.PATH, description="The server's name (any case) or id.")],
    ),
)
class ServerViewSet(MemberZoneMixin, viewsets.ReadOnlyModelViewSet):
    """Servers, active or not, each with its GPUs by index."""

    serializer_class = s.ServerSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        # Devices by index alone: their default order joins the server again.
        return Server.objects.prefetch_related(Prefetch("devices", Device.objects.order_by("index")))

    def get_object(self):
        server = s.find_by_name_or_id(self.get_queryset(), self.kwargs["name"])
        if server is None:
            raise NotFound(f"There is no server '{self.kwargs['name']}'.")
        return server


@extend_schema_view(list=extend_schema(summary="GPUs, by server and index"), retrieve=extend_schema(summary="One GPU", parameters=[DEVICE_ID]))
class DeviceViewSet(MemberZoneMixin, viewsets.ReadOnlyModelViewSet):
    """GPUs, each with its server's name; `server` narrows to one server."""

    queryset = Device.objects.select_related("server")
    serializer_class = s.DeviceSerializer
    filter_backends = (DjangoFilterBackend,)
    filterset_class = DeviceFilter
    lookup_value_regex = r"\d+"


@extend_schema_view(list=extend_schema(summary="Rooms"), retrieve=extend_schema(summary="One room", parameters=[ROOM_ID]))
class RoomViewSet(MemberZoneMixin, viewsets.ReadOnlyModelViewSet):
    """Bookable rooms."""

    queryset = Room.objects.all()
    serializer_class = s.RoomSerializer
    lookup_value_regex = r"\d+"


# --- bookings ----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Bookings, by start, filtered"),
    retrieve=extend_schema(summary="One booking", parameters=[BOOKING_ID]),
    create=extend_schema(
        summary="Book GPUs of a server, a whole server or a room",
        request=s.BookingCreateSerializer,
        responses={201: s.BookingSerializer, **BOOKING_ERRORS},
    ),
    destroy=extend_schema(summary="Cancel a booking that has not started", request=None, parameters=[BOOKING_ID], responses={200: s.BookingSerializer, **BOOKING_ERRORS}),
    cancel=extend_schema(summary="Cancel a booking that has not started", request=None, parameters=[BOOKING_ID], responses={200: s.BookingSerializer, **BOOKING_ERRORS}),
    release=extend_schema(summary="End a running booking now", request=None, parameters=[BOOKING_ID], responses={200: s.BookingSerializer, **BOOKING_ERRORS}),
    approve=extend_schema(
        summary="Staff: approve a booking awaiting approval (it becomes confirmed)", request=None, parameters=[BOOKING_ID],
        responses={200: s.BookingSerializer, 409: error("The booking awaits no decision: already approved, declined, expired or cancelled.")},
    ),
    decline=extend_schema(
        summary="Staff: decline a booking awaiting approval (it is cancelled; the reason goes to the member)",
        request=s.DeclineSerializer, parameters=[BOOKING_ID],
        responses={200: s.BookingSerializer, 409: error("The booking awaits no decision: already approved, declined, expired or cancelled.")},
    ),
    extend=extend_schema(
        summary="Move a booking's end later, by a duration or to a new end",
        request=s.ExtendSerializer,
        parameters=[BOOKING_ID],
        responses={200: s.BookingSerializer, **BOOKING_ERRORS},
    ),
    history=extend_schema(
        summary="Who created, changed, cancelled, released, approved or declined a booking, when and from where (newest first)",
        parameters=[BOOKING_ID],
        responses={200: s.AuditEntrySerializer(many=True), 403: error("`forbidden`: someone else's booking; only its holder or staff may read its history.")},
        examples=[OpenApiExample("Cancelled on the web", response_only=True, value={
            "id": 7, "at": "2026-11-24T09:12:03.512000Z", "action": "cancelled", "actor": "alice", "actor_name": "Alice Liddell",
            "surface": "web", "changes": {"status": ["confirmed", "cancelled"]}, "note": "", "series": None,
        })],
    ),
)
class BookingViewSet(MemberZoneMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Bookings of GPUs, whole servers and rooms. Anyone signed in may read them; only the holder
    or staff may cancel, release or extend one. Times without an offset are read in your time zone."""

    serializer_class = s.BookingSerializer
    filter_backends = (DjangoFilterBackend,)
    filterset_class = BookingFilter
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return bookings_with_relations().order_by("start", "pk")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "now": timezone.now()}

    def create(self, request):
        form = s.BookingCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        booking = services.create_booking(
            request.user,
            start=data["start"],
            end=data["end"],
            purpose=data["purpose"],
            server=data.get("server"),
            devices=data["devices"],
            room=data.get("room"),
            cpu_cores=data["cpu_cores"],
            memory_gib=data["memory_gib"],
            source=data["source"],
        )
        return _created(booking)

    def destroy(self, request, pk=None):
        return self._answer(services.cancel_booking(self.get_object(), by=request.user))

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._answer(services.cancel_booking(self.get_object(), by=request.user))

    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        return self._answer(services.release_booking(self.get_object(), by=request.user))

    @action(detail=True, methods=["post"])
    def extend(self, request, pk=None):
        booking = self.get_object()
        form = s.ExtendSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            booking = services.extend_booking(booking, by=request.user, **form.validated_data)
        except OverflowError:
            raise ValidationError({"duration": ["That is too far ahead."]}) from None
        return self._answer(booking)

    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._answer(services.approve_booking(self.get_object(), by=request.user))

    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        booking = self.get_object()
        form = s.DeclineSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return self._answer(services.decline_booking(booking, by=request.user, reason=form.validated_data["reason"]))

    @action(detail=True, methods=["get"], filter_backends=[])
    def history(self, request, pk=None):
        booking = get_object_or_404(Booking.objects.select_related("user"), pk=pk)
        if booking.user_id != request.user.pk and not request.user.is_staff:
            raise NotAllowed(f"Booking #{booking.pk} belongs to {booking.user.get_username()}; only they or staff can read its history.")
        page = self.paginate_queryset(booking_history(booking))
        return self.get_paginated_response(s.AuditEntrySerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        # Filters are for lists: one booking is found by its id alone.
        return Response(self.get_serializer(get_object_or_404(self.get_queryset(), pk=pk)).data)

    def get_object(self):
        # The services reload the booking under a lock; the relations would be loaded for nothing.
        return get_object_or_404(Booking, pk=self.kwargs["pk"])

    def _answer(self, booking):
        booking = bookings_with_relations().get(pk=booking.pk)
        return Response(self.get_serializer(booking).data)


# --- recurring bookings (series) ----------------------------------------------------------------

SERIES_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The series' id.")


@extend_schema_view(
    create=extend_schema(
        summary="Book the same thing repeatedly (weekly, weekdays, an RRULE) until a date or a number of times",
        request=s.SeriesCreateSerializer,
        responses={
            201: s.SeriesSerializer,
            409: OpenApiResponse(s.SeriesErrorSerializer, description="on_conflict=ask and some dates are taken or over a limit: `refused` lists each; nothing was booked."),
            503: BOOKING_ERRORS[503],
        },
    ),
    retrieve=extend_schema(summary="One recurring booking with its dates", parameters=[SERIES_ID]),
    destroy=extend_schema(
        summary="Cancel every date of a series that has not started (a running one is left alone)",
        request=None, parameters=[SERIES_ID], responses={200: s.SeriesSerializer, **BOOKING_ERRORS},
    ),
    approve=extend_schema(
        summary="Staff: approve every date of a series still awaiting approval (one message to the member)",
        request=None, parameters=[SERIES_ID],
        responses={200: s.SeriesSerializer, 409: error("No date of the series awaits a decision any more.")},
    ),
    decline=extend_schema(
        summary="Staff: decline every date of a series still awaiting approval (the reason goes to the member)",
        request=s.DeclineSerializer, parameters=[SERIES_ID],
        responses={200: s.SeriesSerializer, 409: error("No date of the series awaits a decision any more.")},
    ),
)
class SeriesViewSet(MemberZoneMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Recurring bookings: each date is a booking of its own (bookings/{id}/ cancels or changes one);
    DELETE cancels the rest. Anyone signed in may read one; only its owner or staff may cancel it."""

    serializer_class = s.SeriesSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return BookingSeries.objects.select_related("user")

    def create(self, request):
        form = s.SeriesCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        result = services.create_series(
            request.user, start=data["start"], end=data["end"], repeat=data["repeat"], until=data.get("until"), count=data.get("count"),
            purpose=data["purpose"], server=data.get("server"), devices=data["devices"], room=data.get("room"),
            cpu_cores=data["cpu_cores"], memory_gib=data["memory_gib"], source=data["source"], on_conflict=data["on_conflict"],
            time_zone=str(member_zone(request.user)),
        )
        return Response(self._data(result.series, skipped=result.skipped), status=status.HTTP_201_CREATED)

    def retrieve(self, request, pk=None):
        return Response(self._data(get_object_or_404(self.get_queryset(), pk=pk)))

    def destroy(self, request, pk=None):
        series = get_object_or_404(BookingSeries, pk=pk)
        services.cancel_series(series, by=request.user)
        return Response(self._data(get_object_or_404(self.get_queryset(), pk=pk)))

    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        series = get_object_or_404(BookingSeries, pk=pk)
        services.decide_series(series, by=request.user, approve=True)
        return Response(self._data(get_object_or_404(self.get_queryset(), pk=pk)))

    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        series = get_object_or_404(BookingSeries, pk=pk)
        form = s.DeclineSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        services.decide_series(series, by=request.user, approve=False, reason=form.validated_data["reason"])
        return Response(self._data(get_object_or_404(self.get_queryset(), pk=pk)))

    def _data(self, series, **extra):
        bookings = list(bookings_with_relations().filter(series=series).order_by("start", "pk"))
        return s.SeriesSerializer(series, context={"now": timezone.now(), "bookings": bookings, **extra}).data


class ClaimView(MemberZoneMixin, APIView):
    """GPUs of a server (or the whole server) from now on, for a duration: what the CLI's `claim` sends."""

    @extend_schema(
        request=s.ClaimSerializer,
        responses={201: s.BookingSerializer, **BOOKING_ERRORS},
        summary="Book GPUs of a server, or the whole server, from now",
    )
    def post(self, request):
        form = s.ClaimSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        now = timezone.now()
        booking = services.create_booking(
            request.user,
            start=now,
            end=now + data["duration"],
            purpose=data["purpose"],
            server=data["server"],
            devices=data["devices"],
            cpu_cores=data["cpu_cores"],
            memory_gib=data["memory_gib"],
            source=data["source"],
            now=now,
        )
        return _created(booking, now)


class AvailabilityView(MemberZoneMixin, APIView):
    """Every active unit in scope (GPUs, whole servers, rooms) with the bookings holding it in the
    window, free ones with `busy: []`. A whole server can be booked only when its own unit and
    each of its GPUs are free."""

    @extend_schema(
        parameters=[s.AvailabilityQuerySerializer],
        responses=s.AvailabilitySerializer,
        summary="Every active unit in scope with who holds it in a window (default: the next 24 h)",
    )
    def get(self, request):
        query = s.AvailabilityQuerySerializer(data=query_of(request))
        query.is_valid(raise_exception=True)
        data = query.validated_data
        return Response(availability(data["start"], data["end"], server=data.get("server"), room=data.get("room")))


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def not_found(request, *args, **kwargs):
    """Any other path under /api/: a 404 in the API's error shape, with a hint for a missing slash."""
    path = request.path
    hint = f" Did you mean {path}/ (with the slash)?" if not path.endswith("/") and _is_api_path(path + "/") else ""
    raise NotFound(f"There is no {path} in the API.{hint} See /api/docs/.")


def _is_api_path(path):
    try:
        return resolve(path).url_name != NOT_FOUND_NAME
    except Resolver404:
        return False
