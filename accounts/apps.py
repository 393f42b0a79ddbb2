from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Brokers and CINC connections"
    default_auto_field = "django.db.models.BigAutoField"
