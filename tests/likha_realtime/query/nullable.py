"""A test-only model with nullable columns and a nullable relation, to check NULL semantics against the database."""

from __future__ import annotations

from django.db import models

from erp_demo.models import Customer


class Gadget(models.Model):
    """Not in any installed app (no migrations, invisible to checks); its table is made by the ``gadgets`` fixture."""

    name = models.CharField(max_length=50, null=True)  # noqa: DJ001 - NULL text is what this model is for
    weight = models.DecimalField(max_digits=12, decimal_places=2, null=True)
    count = models.IntegerField(null=True)
    seen = models.DateTimeField(null=True)
    flag = models.BooleanField(null=True)
    extra = models.JSONField(null=True)
    customer = models.ForeignKey(
        Customer, null=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )

    class Meta:
        app_label = "likha_query_tests"
        db_table = "likha_query_tests_gadget"

    def __str__(self) -> str:
        return f"Gadget {self.pk}"
