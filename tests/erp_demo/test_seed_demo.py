"""The ``seed_demo`` command and the demo ERP models' defaults and constraints."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from erp_demo.models import Customer, Product, SalesOrder, SeededUser

pytestmark = pytest.mark.django_db

EDITOR_PERMS = {
    "erp_demo.view_product",
    "erp_demo.add_product",
    "erp_demo.change_product",
    "erp_demo.view_customer",
    "erp_demo.view_salesorder",
}


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, list[dict[str, object]]]:
    user_model = get_user_model()
    return {
        "products": list(Product.objects.order_by("id").values()),
        "customers": list(Customer.objects.order_by("id").values()),
        "orders": list(SalesOrder.objects.order_by("id").values()),
        "users": list(user_model.objects.order_by("id").values()),
        "groups": list(Group.objects.order_by("id").values("id", "name", "permissions__codename")),
        "memberships": list(user_model.groups.through.objects.order_by("id").values()),
    }


def test_seeding_creates_thirty_products_twelve_customers_and_twenty_four_orders() -> None:
    seed()

    assert Product.objects.count() == 30
    assert Customer.objects.count() == 12
    assert SalesOrder.objects.count() == 24
    assert get_user_model().objects.count() == 2
    assert sorted(Group.objects.values_list("name", flat=True)) == ["Editors", "Public"]


def test_seeded_products_are_mostly_active_with_three_drafts_and_two_archived() -> None:
    seed()

    assert sorted(Product.objects.filter(status="draft").values_list("sku", flat=True)) == [
        "SKU-0007",
        "SKU-0019",
        "SKU-0026",
    ]
    assert sorted(Product.objects.filter(status="archived").values_list("sku", flat=True)) == [
        "SKU-0013",
        "SKU-0029",
    ]
    assert Product.objects.filter(status="active").count() == 25


def test_seeded_orders_mix_six_drafts_nine_confirmed_six_shipped_and_three_cancelled() -> None:
    seed()

    counts = {status: SalesOrder.objects.filter(status=status).count() for status in SalesOrder.Status.values}
    assert counts == {"draft": 6, "confirmed": 9, "shipped": 6, "cancelled": 3}
    assert {customer.orders.count() for customer in Customer.objects.all()} == {2}


def test_seeded_rows_have_deterministic_skus_names_prices_and_stock() -> None:
    seed()

    skus = list(Product.objects.order_by("id").values_list("sku", flat=True))
    assert skus == [f"SKU-{number:04d}" for number in range(1, 31)]
    first = Product.objects.get(sku="SKU-0001")
    assert (first.name, first.price, first.stock, first.status) == (
        "Steel Bolt Pack",
        Decimal("15.23"),
        17,
        "active",
    )
    last = Product.objects.get(sku="SKU-0030")
    assert (last.name, last.price, last.stock, last.status) == ("Bamboo Mug", Decimal("53.40"), 30, "active")
    acme = Customer.objects.get(email="acme-trading@example.com")
    assert (acme.name, acme.credit_limit) == ("Acme Trading", Decimal("0.00"))
    first_order = SalesOrder.objects.order_by("id").first()
    assert first_order is not None
    assert (first_order.customer, first_order.status, first_order.total, first_order.created) == (
        acme,
        "draft",
        Decimal("19.99"),
        datetime(2025, 1, 6, 9, 0, tzinfo=UTC),
    )


def test_admin_is_an_active_staff_superuser() -> None:
    seed()

    admin = get_user_model().objects.get(email="admin@example.com")
    assert (admin.is_active, admin.is_staff, admin.is_superuser) == (True, True, True)


def test_editor_has_exactly_the_five_editor_permissions_through_the_editors_group() -> None:
    seed()

    editor = get_user_model().objects.get(email="editor@example.com")
    all_erp_perms = {
        f"erp_demo.{codename}"
        for codename in Permission.objects.filter(content_type__app_label="erp_demo").values_list("codename", flat=True)
    }
    assert len(all_erp_perms) == 16  # four models: products, customers, sales orders, users
    assert {perm for perm in all_erp_perms if editor.has_perm(perm)} == EDITOR_PERMS
    assert editor.get_all_permissions() == EDITOR_PERMS
    assert editor.get_user_permissions() == set()
    assert list(editor.groups.values_list("name", flat=True)) == ["Editors"]
    assert (editor.is_active, editor.is_superuser) == (True, False)


def test_editor_cannot_delete_products_customers_or_orders() -> None:
    seed()

    editor = get_user_model().objects.get(email="editor@example.com")
    assert editor.has_perm("erp_demo.delete_product") is False
    assert editor.has_perm("erp_demo.delete_customer") is False
    assert editor.has_perm("erp_demo.delete_salesorder") is False


def test_documented_passwords_authenticate_both_demo_users() -> None:
    seed()

    admin = authenticate(email="admin@example.com", password="admin-password")
    editor = authenticate(email="editor@example.com", password="editor-password")
    assert admin is not None
    assert admin.email == "admin@example.com"
    assert editor is not None
    assert editor.email == "editor@example.com"
    assert authenticate(email="editor@example.com", password="admin-password") is None


def test_public_group_can_only_view_products() -> None:
    seed()

    public = Group.objects.get(name="Public")
    perms = {(p.content_type.app_label, p.codename) for p in public.permissions.all()}
    assert perms == {("erp_demo", "view_product")}


def test_running_twice_keeps_every_row_its_id_and_its_values() -> None:
    seed()
    before = snapshot()

    output = seed()

    assert snapshot() == before
    assert "Created this run: 0 products, 0 customers, 0 sales orders" in output


def test_first_run_reports_everything_it_created_and_the_two_logins() -> None:
    output = seed()

    assert "Products: 30 (25 active, 3 draft, 2 archived)" in output
    assert "Customers: 12" in output
    assert "Sales orders: 24 (6 draft, 9 confirmed, 6 shipped, 3 cancelled)" in output
    assert "Created this run: 30 products, 12 customers, 24 sales orders" in output
    assert "admin@example.com / admin-password" in output
    assert "editor@example.com / editor-password" in output


def edit_the_demo_logins_and_groups() -> None:
    user_model = get_user_model()
    editor = user_model.objects.get(email="editor@example.com")
    editor.set_password("something-else")
    editor.is_active = False
    editor.save()
    editor.groups.clear()
    editor.user_permissions.add(Permission.objects.get(codename="delete_product"))
    admin = user_model.objects.get(email="admin@example.com")
    admin.set_password("forgotten")
    admin.is_superuser = False
    admin.save()
    Group.objects.get(name="Public").permissions.add(Permission.objects.get(codename="view_customer"))


def test_rerun_leaves_existing_demo_logins_and_groups_as_they_are() -> None:
    seed()
    edit_the_demo_logins_and_groups()

    seed()

    assert authenticate(email="admin@example.com", password="admin-password") is None
    assert authenticate(email="admin@example.com", password="forgotten").is_superuser is False
    editor = get_user_model().objects.get(email="editor@example.com")
    assert (editor.is_active, editor.check_password("something-else")) == (False, True)
    assert set(Group.objects.get(name="Public").permissions.values_list("codename", flat=True)) == {
        "view_product",
        "view_customer",
    }


def test_rerun_with_reset_restores_demo_passwords_flags_and_permissions() -> None:
    seed()
    edit_the_demo_logins_and_groups()

    seed("--reset")

    user_model = get_user_model()
    admin = authenticate(email="admin@example.com", password="admin-password")
    editor = authenticate(email="editor@example.com", password="editor-password")
    assert admin is not None
    assert admin.is_superuser is True
    assert editor is not None
    assert editor.is_active is True
    assert editor.get_all_permissions() == EDITOR_PERMS
    assert set(Group.objects.get(name="Public").permissions.values_list("codename", flat=True)) == {"view_product"}
    assert user_model.objects.count() == 2


REFUSED = (
    "This database holds {} user(s) that seed_demo did not create, so it is not a demo database; nothing was "
    "changed. Point DATABASE_URL (or SQLITE_PATH) at a new database, or pass --allow-other-users (make run: "
    "SEED_ARGS=--allow-other-users), which still changes none of those users. (A demo database seeded before "
    "seed_demo kept this record counts too.)"
)


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as refusal:
        seed(*args)
    return str(refusal.value)


def test_a_database_with_other_users_is_refused_and_left_untouched() -> None:
    get_user_model().objects.create_user("cfo@erp.example", "their-own-password")

    assert refused() == REFUSED.format(1)

    assert (Product.objects.count(), Group.objects.count(), get_user_model().objects.count()) == (0, 0, 1)
    seed("--allow-other-users")
    assert (Product.objects.count(), get_user_model().objects.count()) == (30, 3)


def foreign_admin() -> None:
    """A real ERP's database whose only user happens to be admin@example.com, with its own password."""
    get_user_model().objects.create_superuser("admin@example.com", "the-erps-own-password")


def test_a_database_whose_only_user_has_a_demo_email_is_refused() -> None:
    foreign_admin()
    before = snapshot()

    assert refused() == REFUSED.format(1)
    assert refused("--reset") == REFUSED.format(1)

    assert snapshot() == before
    assert SeededUser.objects.count() == 0


def test_allowed_other_users_are_never_changed_even_with_reset() -> None:
    foreign_admin()
    admin_before = list(get_user_model().objects.filter(email="admin@example.com").values())

    output = seed("--allow-other-users", "--reset")

    assert list(get_user_model().objects.filter(email="admin@example.com").values()) == admin_before
    assert authenticate(email="admin@example.com", password="admin-password") is None
    assert "Login (superuser): admin@example.com is a user seed_demo did not create: left as it is" in output
    assert "admin-password" not in output
    assert "Login (Editors group): editor@example.com / editor-password" in output  # created, so its own
    assert list(SeededUser.objects.values_list("user__email", flat=True)) == ["editor@example.com"]
    assert refused() == REFUSED.format(1)  # the admin is still not seed_demo's


def test_seed_demo_records_the_users_it_creates_and_accepts_its_own_database_again() -> None:
    seed()
    seeded = sorted(SeededUser.objects.values_list("user__email", flat=True))
    assert seeded == ["admin@example.com", "editor@example.com"]

    assert "Created this run: 0 products" in seed("--reset")


def test_a_user_recreated_with_a_demo_email_is_not_taken_for_the_demos() -> None:
    seed()
    user_model = get_user_model()
    user_model.objects.get(email="admin@example.com").delete()  # its record goes with it
    user_model.objects.create_superuser("admin@example.com", "someone-elses-password")

    assert refused() == REFUSED.format(1)
    assert authenticate(email="admin@example.com", password="someone-elses-password") is not None


def test_rerun_keeps_edits_to_demo_rows_and_recreates_deleted_ones() -> None:
    seed()
    Product.objects.filter(sku="SKU-0002").update(price=Decimal("99.99"))
    Product.objects.filter(sku="SKU-0003").delete()
    kept_ids = set(Product.objects.values_list("id", flat=True))

    output = seed()

    assert Product.objects.get(sku="SKU-0002").price == Decimal("99.99")
    assert Product.objects.get(sku="SKU-0003").id not in kept_ids
    assert Product.objects.count() == 30
    assert "Created this run: 1 products, 0 customers, 0 sales orders" in output


def test_product_status_defaults_to_active_with_zero_price_and_stock() -> None:
    product = Product.objects.create(name="Widget", sku="W-1")
    product.refresh_from_db()

    assert (product.status, product.price, product.stock) == ("active", Decimal("0.00"), 0)


def test_customer_credit_limit_defaults_to_zero() -> None:
    customer = Customer.objects.create(name="Someone", email="someone@example.com")
    customer.refresh_from_db()

    assert customer.credit_limit == Decimal("0.00")


def test_sales_order_status_defaults_to_draft_with_zero_total() -> None:
    customer = Customer.objects.create(name="Someone", email="someone@example.com")
    order = SalesOrder.objects.create(customer=customer)
    order.refresh_from_db()

    assert (order.status, order.total) == ("draft", Decimal("0.00"))


def test_duplicate_sku_is_rejected_by_the_database() -> None:
    Product.objects.create(name="First", sku="DUP-1")

    with pytest.raises(IntegrityError), transaction.atomic():
        Product.objects.create(name="Second", sku="DUP-1")
    assert Product.objects.filter(sku="DUP-1").count() == 1


def test_duplicate_customer_email_is_rejected_by_the_database() -> None:
    Customer.objects.create(name="First", email="dup@example.com")

    with pytest.raises(IntegrityError), transaction.atomic():
        Customer.objects.create(name="Second", email="dup@example.com")
    assert Customer.objects.filter(email="dup@example.com").count() == 1


def test_negative_price_stock_and_credit_limit_fail_validation() -> None:
    product = Product(name="Bad", sku="BAD-1", price=Decimal("-0.01"), stock=-1)
    customer = Customer(name="Bad", email="bad@example.com", credit_limit=Decimal("-1"))

    with pytest.raises(ValidationError) as product_error:
        product.full_clean()
    with pytest.raises(ValidationError) as customer_error:
        customer.full_clean()
    assert set(product_error.value.message_dict) == {"price", "stock"}
    assert set(customer_error.value.message_dict) == {"credit_limit"}
