"""URL configuration."""

from django.contrib import admin
from django.urls import path
from django.views.generic import TemplateView

from kasparro.health import health

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("health", health, name="health"),
    path("admin/", admin.site.urls),
]

handler400 = "kasparro.views.bad_request"
handler403 = "kasparro.views.permission_denied"
handler404 = "kasparro.views.page_not_found"
handler500 = "kasparro.views.server_error"
