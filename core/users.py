"""People: a user is an email address with one role."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from core import audit
from core.roles import Role


def create_user(
    *,
    email: str,
    role: Role,
    password: str,
    actor: User | None = None,
    check_password: bool = True,
) -> User:
    """Create a user whose login is their email. Raises ValidationError with a clear message."""
    email = email.strip().lower()
    validate_email(email)
    User = get_user_model()
    if User.objects.filter(username__iexact=email).exists():
        raise ValidationError(f"A user with the email {email} already exists.")
    if check_password:
        validate_password(password, User(username=email, email=email))
    with transaction.atomic():
        user = User.objects.create_user(username=email, email=email, password=password)
        user.groups.add(Group.objects.get(name=role.value))
        audit.record(actor=actor, action="user.created", target=user, details={"role": role.value})
    return user
