"""A host's user model: Django's ``AbstractUser`` with a field of its own."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class Member(AbstractUser):
    employee_number = models.CharField(max_length=20, blank=True)
