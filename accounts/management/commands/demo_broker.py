"""Create (or reset the password of) the demo broker login used by `make run`."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo broker login, or reset its password."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", required=True)

    def handle(self, *args, username, password, **options):
        user, created = get_user_model().objects.get_or_create(
            username=username,
            defaults={
                "first_name": "Demo",
                "last_name": "Broker",
                "email": "demo@example.com",
            },
        )
        user.set_password(password)
        user.save()
        self.stdout.write(
            "%s the demo broker login '%s'."
            % ("Created" if created else "Kept", username)
        )
