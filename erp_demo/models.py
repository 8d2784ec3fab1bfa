"""The demo ERP's models: its users (email login), products, customers and their sales orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

NOT_NEGATIVE = MinValueValidator(Decimal("0"))


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("Users need an email address.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    """The demo's user (``AUTH_USER_MODEL = "erp_demo.User"``): logs in by email, Django permissions and groups.

    realtime_auth works with any user model; this one is the demo's choice, an ``AbstractBaseUser`` with
    ``USERNAME_FIELD = "email"``.
    """

    email = models.EmailField("email address", unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        constraints = [models.UniqueConstraint(Lower("email"), name="erp_demo_user_email_ci_unique")]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = self.__class__.objects.normalize_email(self.email).lower()

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Logins match emails case-insensitively, so they are stored in one case only.
        self.email = (self.email or "").lower()
        super().save(*args, **kwargs)


class Product(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DRAFT = "draft", "Draft"
        ARCHIVED = "archived", "Archived"

    name = models.CharField(max_length=200)
    sku = models.CharField("SKU", max_length=64, unique=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"), validators=[NOT_NEGATIVE])
    stock = models.IntegerField(default=0, validators=[MinValueValidator(0)])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class Customer(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(unique=True)
    credit_limit = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"), validators=[NOT_NEGATIVE])
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class SalesOrder(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        CONFIRMED = "confirmed", "Confirmed"
        SHIPPED = "shipped", "Shipped"
        CANCELLED = "cancelled", "Cancelled"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"), validators=[NOT_NEGATIVE])
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        verbose_name = "sales order"

    def __str__(self) -> str:
        return f"Sales order #{self.pk} ({self.status})"


class SeededUser(models.Model):
    """``seed_demo``'s record of a user it created. It refuses a database holding any user without one (not a demo
    database, whatever the emails), and never changes such a user. Deleting the user deletes its record, so a
    later user, even one given the same email or primary key, is never taken for the demo's."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True, related_name="+")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "user created by seed_demo"
        default_permissions = ()  # the command's bookkeeping: no one is given rights on it

    def __str__(self) -> str:
        return f"seed_demo created user #{self.pk}"
