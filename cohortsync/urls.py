from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from api.urls import api_urls, profile_urls
from core import views
from syncs.views.connection_removal import connection_delete, connection_delete_cancel
from syncs.views.home import home

urlpatterns = [
    path("", home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("audit/", views.audit_log, name="audit_log"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/lockouts/", views.login_lockouts, name="login_lockouts"),
    path("accounts/lockouts/unlock/", views.login_unlock, name="login_unlock"),
    path("accounts/profile/", include(profile_urls)),
    # Deleting a connection drives its syncs' cleanup runs, so syncs serves it.
    path("connections/<int:pk>/delete/", connection_delete, name="connection_delete"),
    path(
        "connections/<int:pk>/delete/cancel/",
        connection_delete_cancel,
        name="connection_delete_cancel",
    ),
    path("connections/", include("connections.urls")),
    path("cohorts/", include("cohorts.urls")),
    path("syncs/", include("syncs.urls")),
    path("members/", include("syncs.lookup_urls")),
    path("settings/alerts/", include("alerts.urls")),
    path("partners/", include("cohorts.inbound.urls")),
    path("api/v1/", include(api_urls)),
    path("admin/", admin.site.urls),
]
