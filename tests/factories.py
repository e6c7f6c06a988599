import factory
from django.contrib.auth import get_user_model

from reservations.models import Device, Room, Server


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"member{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@lab.example.org")
    password = factory.django.Password("correct horse battery staple")


class ServerFactory(factory.django.DjangoModelFactory):
    """A server; `gpus=N` gives it N GPUs numbered 0..N-1."""

    class Meta:
        model = Server
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"server{n}")
    hostname = factory.LazyAttribute(lambda server: f"{server.name}.lab.example.org")

    @factory.post_generation
    def gpus(server, create, count, **kwargs):
        for index in range(count or 0):
            DeviceFactory(server=server, index=index)


class DeviceFactory(factory.django.DjangoModelFactory):
    """A GPU, added as the admin and the host agents add one (services.register_device)."""

    class Meta:
        model = Device

    server = factory.SubFactory(ServerFactory)
    index = factory.Sequence(lambda n: n)
    model = "NVIDIA A100-SXM4-80GB"
    memory_mib = 81920

    @classmethod
    def _create(cls, model_class, *, server, index, **fields):
        from reservations.services import register_device

        return register_device(server, index, **fields)


class RoomFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Room

    name = factory.Sequence(lambda n: f"Meeting room {n}")
    capacity = 8
