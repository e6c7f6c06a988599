"""The waitlist in the API: join, list your entries, withdraw, claim an offer (see reservations/waitlist.py)."""
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from ..models import Booking, Room, Server, WaitlistEntry
from ..services import waitlist
from .schema import error
from .serializers import (
    CLIENT_SOURCES,
    BookingSerializer,
    DurationField,
    NameOrIdField,
    PlainTextField,
    TimeField,
    UTCTimeField,
    find_by_name_or_id,
)
from .views import BOOKING_ERRORS, MemberZoneMixin, _created, bookings_with_relations

ENTRY_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The waitlist entry's id.")


class WaitlistEntrySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    user = serializers.CharField(source="user.username", read_only=True)
    server = serializers.CharField(source="server.name", allow_null=True, read_only=True, default=None)
    gpus = serializers.IntegerField(allow_null=True, read_only=True, help_text="How many GPUs; null: the whole server (or a room).")
    room = serializers.CharField(source="room.name", allow_null=True, read_only=True, default=None)
    what = serializers.CharField(read_only=True, help_text="e.g. '2 GPUs on thalys'.")
    length = serializers.SerializerMethodField(help_text="e.g. 2h.")
    not_after = UTCTimeField(read_only=True, help_text="The latest useful start; the entry lapses after it.")
    purpose = serializers.CharField(read_only=True)
    state = serializers.ChoiceField(choices=WaitlistEntry.State.choices, read_only=True)
    position = serializers.IntegerField(allow_null=True, read_only=True, help_text="1 for the first in line; null once closed.")
    created_at = UTCTimeField(read_only=True)
    offered_devices = serializers.CharField(read_only=True, help_text="For an open offer of GPUs: which, e.g. '2-3'.")
    offer_expires_at = UTCTimeField(allow_null=True, read_only=True)
    claim_token = serializers.SerializerMethodField(help_text="For an open offer: the token to claim it with (optional when claiming).")
    booking = serializers.IntegerField(source="booking_id", allow_null=True, read_only=True, help_text="The booking a claim made.")

    def get_length(self, entry) -> str:
        return entry.length_text

    def get_claim_token(self, entry) -> str | None:
        return entry.token if entry.state == WaitlistEntry.State.OFFERED else None


class WaitlistJoinedSerializer(WaitlistEntrySerializer):
    told_by = serializers.ListField(
        child=serializers.CharField(), read_only=True,
        help_text="The channels that will tell you of your turn (e.g. ['slack_dm', 'email']), from your notification preferences; "
        "empty: nothing will, look at your entries.",
    )
    told = serializers.CharField(read_only=True, help_text="The same, said in a sentence for a person.")


class WaitlistJoinSerializer(serializers.Serializer):
    server = NameOrIdField(help_text="A server by name or id: some of its GPUs (gpus), or the whole of it (no gpus).")
    gpus = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=10_000, help_text="How many GPUs; leave out for the whole server.")
    room = NameOrIdField(help_text="A room by name or id, instead of a server.")
    length = DurationField(help_text="How long the booking would last, e.g. 2h.")
    not_after = TimeField(required=False, allow_null=True, help_text="The latest useful start (default: as soon as possible, within the waiting limit).")
    purpose = PlainTextField(label="purpose", max_length=200, required=False, allow_blank=True, default="")

    def validate(self, data):
        if data.get("server") is not None:
            data["server"] = find_by_name_or_id(Server.objects, data["server"]) or data["server"]
        if data.get("room") is not None:
            data["room"] = find_by_name_or_id(Room.objects, data["room"]) or data["room"]
        return data


class WaitlistClaimSerializer(serializers.Serializer):
    # The token's alphabet (secrets.token_urlsafe) in the schema: a blank one, e.g. "\r" once trimmed, is not one.
    token = serializers.RegexField(r"^[A-Za-z0-9_-]+$", required=False, max_length=64, help_text="The offer's token (from the message or the entry); optional.")
    source = serializers.ChoiceField(choices=CLIENT_SOURCES, default=Booking.Source.API.value)


OFFER_GONE = {409: error("No open offer: already claimed, ran out, or its GPUs were booked meanwhile (then you are back in line).")}


@extend_schema_view(
    list=extend_schema(summary="Your waitlist entries, open ones and those that ended"),
    create=extend_schema(request=WaitlistJoinSerializer, responses={201: WaitlistJoinedSerializer}, summary="Ask to be told when GPUs, a server or a room are free"),
    destroy=extend_schema(parameters=[ENTRY_ID], responses={204: None}, summary="Leave the waiting list"),
    claim=extend_schema(
        parameters=[ENTRY_ID], request=WaitlistClaimSerializer, responses={201: BookingSerializer, **BOOKING_ERRORS, **OFFER_GONE},
        summary="Claim an open offer: book it from now for the entry's length",
    ),
)
class WaitlistViewSet(MemberZoneMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Your "tell me when" entries. When what you wait for frees up, the first in line gets an offer
    (state offered) for a few minutes; claim it to book it. Staff see everyone's."""

    serializer_class = WaitlistEntrySerializer
    lookup_value_regex = r"\d+"
    pagination_class = None

    def get_queryset(self):
        rows = WaitlistEntry.objects.select_related("user", "server", "room").order_by("-created_at", "-pk")
        return rows if self.request.user.is_staff else rows.filter(user=self.request.user)

    def list(self, request):
        entries = waitlist.with_positions(self.get_queryset()[:200])
        return Response(self.get_serializer(entries, many=True).data)

    def create(self, request):
        form = WaitlistJoinSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        entry = waitlist.join(
            request.user, server=data.get("server"), gpus=data.get("gpus"), room=data.get("room"), length=data["length"],
            not_after=data.get("not_after"), purpose=data["purpose"],
        )
        entry.position = waitlist.position(entry)
        entry.told_by, entry.told = waitlist.how_you_will_hear(request.user)
        return Response(WaitlistJoinedSerializer(entry, context=self.get_serializer_context()).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        waitlist.withdraw(get_object_or_404(WaitlistEntry, pk=pk), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def claim(self, request, pk=None):
        form = WaitlistClaimSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        now = timezone.now()
        booking = waitlist.claim(
            get_object_or_404(WaitlistEntry, pk=pk), by=request.user, token=form.validated_data.get("token"),
            source=form.validated_data["source"], now=now,
        )
        return _created(bookings_with_relations().get(pk=booking.pk), now)
