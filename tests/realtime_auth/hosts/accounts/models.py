"""A host's user model without ``PermissionsMixin``: a login name, an optional email, an active flag."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class AccountManager(BaseUserManager["Account"]):
    def create_user(self, login: str, email: str = "", password: str | None = None, **extra: Any) -> Account:
        account = self.model(login=login, email=self.normalize_email(email), **extra)
        account.set_password(password)
        account.save(using=self._db)
        return account


class Account(AbstractBaseUser):
    login = models.CharField(max_length=64, unique=True)
    email = models.EmailField(blank=True)
    is_active = models.BooleanField(default=True)

    objects = AccountManager()

    USERNAME_FIELD = "login"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["email"]
