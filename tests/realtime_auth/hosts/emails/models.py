"""A host's user model that logs in by email: ``AbstractBaseUser`` with ``USERNAME_FIELD = "email"`` and no
``PermissionsMixin`` (no groups, no permissions, no superuser flag), Django's stock manager lookups (the email matched
as stored)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class EmailAccountManager(BaseUserManager["EmailAccount"]):
    def create_user(self, email: str, password: str | None = None, **extra: Any) -> EmailAccount:
        account = self.model(email=self.normalize_email(email), **extra)
        account.set_password(password)
        account.save(using=self._db)
        return account


class EmailAccount(AbstractBaseUser):
    email = models.EmailField(unique=True)
    is_active = models.BooleanField(default=True)

    objects = EmailAccountManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []
