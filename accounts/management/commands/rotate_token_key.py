"""Re-encrypt every stored CINC token with the current TOKEN_ENCRYPTION_KEY."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import crypto
from accounts.models import Connection


class Command(BaseCommand):
    help = (
        "Re-encrypt stored CINC tokens with TOKEN_ENCRYPTION_KEY. Put the new key "
        "in TOKEN_ENCRYPTION_KEY and the old one in TOKEN_ENCRYPTION_PREVIOUS_KEYS "
        "first; after this command the old key can be removed."
    )

    def handle(self, *args, **options):
        count = 0
        with transaction.atomic():
            for connection in Connection.objects.select_for_update().only(
                "pk", "access_token_ciphertext", "refresh_token_ciphertext"
            ):
                try:
                    access = crypto.rotate(connection.access_token_ciphertext)
                    refresh = crypto.rotate(connection.refresh_token_ciphertext)
                except crypto.TokenDecryptionError as exc:
                    raise CommandError(
                        "Connection %s: %s Nothing was changed." % (connection.pk, exc)
                    ) from None
                Connection.objects.filter(pk=connection.pk).update(
                    access_token_ciphertext=access, refresh_token_ciphertext=refresh
                )
                count += 1
        self.stdout.write(
            self.style.SUCCESS("Re-encrypted the tokens of %d connection(s)." % count)
        )
