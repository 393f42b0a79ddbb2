from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Mirrored agents and leads"
    default_auto_field = "django.db.models.BigAutoField"
