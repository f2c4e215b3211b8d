"""The alert settings page (admins only): channels, events, a test alert, recent deliveries."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from alerts import services
from alerts.forms import AlertSettingsForm
from alerts.models import AlertDelivery, AlertSettings
from core.audit import client_ip
from core.roles import role_required

MANAGE = "alerts.manage_alerts"
RECENT_DELIVERIES = 25


def _deliveries_context() -> dict[str, object]:
    deliveries = list(AlertDelivery.objects.all()[:RECENT_DELIVERIES])
    return {
        "deliveries": deliveries,
        "pending": any(d.status == AlertDelivery.Status.PENDING for d in deliveries),
        "failures": sum(d.status == AlertDelivery.Status.FAILED for d in deliveries),
    }


@role_required(MANAGE)
@require_http_methods(["GET", "POST"])
def alert_settings(request: HttpRequest) -> HttpResponse:
    row = AlertSettings.load()
    form = AlertSettingsForm(request.POST or None, instance=row)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.update_alert_settings(
                email_enabled=data["email_enabled"],
                email_recipients=data["email_recipients"],
                webhook_enabled=data["webhook_enabled"],
                webhook_url=data["webhook_url"] or None,
                remove_webhook=bool(data.get("remove_webhook")),
                toggles=form.toggles,
                partial_failure_threshold_pct=data["partial_failure_threshold_pct"],
                actor=request.user,
                ip=client_ip(request),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Alert settings saved.")
            return redirect("alerts:settings")
    context = {"form": form, "settings_row": row, **_deliveries_context()}
    return render(request, "alerts/settings.html", context)


@role_required(MANAGE)
@require_POST
def alert_test(request: HttpRequest) -> HttpResponse:
    try:
        deliveries = services.send_test_alert(actor=request.user, ip=client_ip(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        channels = " and ".join(d.get_channel_display().lower() for d in deliveries)
        messages.info(request, f"Test alert queued by {channels}; its delivery shows below.")
    return redirect("alerts:settings")


@role_required(MANAGE)
@require_GET
def alert_deliveries(request: HttpRequest) -> HttpResponse:
    """The deliveries table alone, polled by htmx while any delivery is pending."""
    return render(request, "alerts/_deliveries.html", {**_deliveries_context(), "live": True})
