"""Start the test provider: `python -m tests.sso.provider.serve PORT` with PROVIDER_* in the environment.

Registers the portal as a client (PROVIDER_CLIENT_ID, PROVIDER_CLIENT_SECRET, PROVIDER_REDIRECT_URIS,
PROVIDER_LOGOUT_URIS), adds the lab's people once, prints "ready" and serves until stopped."""
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.sso.provider.settings")

PEOPLE = {  # user name: (given name, family name, groups); each one's password is "<user name>-idp"
    "olivia": ("Olivia", "Okafor", ["labres-staff", "phd"]),
    "alice": ("Alice", "Liddell", ["students"]),
    "unverified": ("Una", "Verified", []),
}


def register():
    from django.contrib.auth.models import Group, User
    from oauth2_provider.models import Application

    for username, (given, family, groups) in PEOPLE.items():
        if User.objects.filter(username=username).exists():
            continue
        user = User.objects.create_user(username, f"{username}@lab.example", f"{username}-idp", first_name=given, last_name=family)
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])
    Application.objects.update_or_create(
        client_id=os.environ["PROVIDER_CLIENT_ID"],
        defaults={
            "name": "labres",
            "client_secret": os.environ["PROVIDER_CLIENT_SECRET"],
            "client_type": Application.CLIENT_CONFIDENTIAL,
            "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
            "redirect_uris": os.environ["PROVIDER_REDIRECT_URIS"],
            "post_logout_redirect_uris": os.environ.get("PROVIDER_LOGOUT_URIS", ""),
            "algorithm": Application.RS256_ALGORITHM,
            "skip_authorization": True,
        },
    )


def main():
    django.setup()
    if sys.argv[1:2] == ["migrate"]:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        return
    from django.core.servers.basehttp import run
    from django.core.wsgi import get_wsgi_application

    register()
    print("ready", flush=True)
    run("127.0.0.1", int(sys.argv[1]), get_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
