from django.urls import path

from . import views

app_name = "leads"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("leads/", views.lead_list, name="list"),
    path("leads/export.csv", views.lead_export, name="export"),
    path("leads/new/", views.lead_new, name="create"),
    path("leads/<uuid:uuid>/", views.lead_detail, name="detail"),
    path("leads/<uuid:uuid>/refresh/", views.lead_refresh, name="refresh"),
    path("agents/", views.agent_list, name="agent-list"),
    path("agents/<uuid:uuid>/", views.agent_detail, name="agent-detail"),
    path("connections/<uuid:uuid>/sync/", views.sync_start, name="sync-start"),
    path(
        "connections/<uuid:uuid>/sync/progress/",
        views.sync_progress,
        name="sync-progress",
    ),
]
