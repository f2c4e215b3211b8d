from django.urls import path

from connections.views import connections, keys

app_name = "connections"

urlpatterns = [
    path("", connections.connection_list, name="list"),
    path("new/", connections.connection_create, name="create"),
    path("<int:pk>/", connections.connection_detail, name="detail"),
    path("<int:pk>/edit/", connections.connection_edit, name="edit"),
    path("<int:pk>/test/", connections.connection_test, name="test"),
    path("<int:pk>/checks/<int:check_pk>/", connections.connection_check, name="check"),
    path("keys/", keys.key_list, name="key_list"),
    path("keys/new/", keys.key_create, name="key_create"),
    path("keys/<int:pk>/", keys.key_detail, name="key_detail"),
    path("keys/<int:pk>/revoke/", keys.key_revoke, name="key_revoke"),
    path("keys/<int:pk>/rotate/", keys.key_rotate, name="key_rotate"),
]
