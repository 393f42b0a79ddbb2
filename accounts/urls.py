from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("cinc/connect/", views.connect, name="cinc-connect"),
    path("cinc/callback/", views.callback, name="cinc-callback"),
    path(
        "cinc/connections/<uuid:uuid>/reconnect/",
        views.reconnect,
        name="cinc-reconnect",
    ),
    path(
        "cinc/connections/<uuid:uuid>/disconnect/",
        views.disconnect,
        name="cinc-disconnect",
    ),
]
