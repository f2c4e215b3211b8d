from django.urls import path

from alerts import views

app_name = "alerts"

urlpatterns = [
    path("", views.alert_settings, name="settings"),
    path("test/", views.alert_test, name="test"),
    path("deliveries/", views.alert_deliveries, name="deliveries"),
]
