from django.urls import path

from syncs.views import member_lookup

app_name = "members"

urlpatterns = [
    path("", member_lookup.member_lookup, name="lookup"),
]
