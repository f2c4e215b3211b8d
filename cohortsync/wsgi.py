"""WSGI entry point: `gunicorn cohortsync.wsgi`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cohortsync.settings")

application = get_wsgi_application()
