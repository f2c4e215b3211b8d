from django.apps import AppConfig


class ConnectionsConfig(AppConfig):
    name = "connections"
    verbose_name = "Partner connections and data-import keys"

    def ready(self) -> None:
        from django.core.checks import register

        from connections.checks import check_encryption_keys

        # A key Fernet refuses fails `manage.py check` and migrate (connections.E001).
        register(check_encryption_keys)
