"""``manage.py seed_demo``: fill the demo ERP with products, customers, orders, users and groups.

The command is idempotent. Rows are looked up by a natural key (a product's SKU, a customer's email, an
order's customer and creation time) and only created when missing, so a second run creates nothing and
leaves existing rows, including any edits made to them, untouched. The two demo users and the two groups are
created when missing and otherwise left as they are: ``--reset`` resets them to the documented state
(password, active, flags, group membership and group permissions).

Safe by default: the command records each user it creates (``erp_demo.SeededUser``, tied to the user row), and a
database holding any user it did not create is not a demo database (``DATABASE_URL`` may point at a real ERP, whose
admin may well be ``admin@example.com``), so it refuses to touch it unless ``--allow-other-users`` is given. Even then
it never changes a user it did not create, ``--reset`` included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections, router, transaction
from django.db.models import Count

from erp_demo.models import Customer, Product, SalesOrder, SeededUser

if TYPE_CHECKING:
    from erp_demo.models import User

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password"
EDITOR_EMAIL = "editor@example.com"
EDITOR_PASSWORD = "editor-password"

EDITORS_GROUP = "Editors"
EDITORS_PERMISSIONS = ("view_product", "add_product", "change_product", "view_customer", "view_salesorder")
PUBLIC_GROUP = "Public"
PUBLIC_PERMISSIONS = ("view_product",)

_MATERIALS = ("Steel", "Oak", "Copper", "Nylon", "Ceramic", "Bamboo")
_ITEMS = ("Bolt Pack", "Shelf", "Hinge", "Cable", "Mug")
# 1-based product numbers that are not active; all others are.
_PRODUCT_STATUS = {7: "draft", 19: "draft", 26: "draft", 13: "archived", 29: "archived"}

_CUSTOMERS = (
    "Acme Trading",
    "Northwind Supplies",
    "Globex Retail",
    "Initech Services",
    "Umbrella Foods",
    "Stark Hardware",
    "Wayne Logistics",
    "Hooli Office",
    "Soylent Grocers",
    "Tyrell Garden",
    "Cyberdyne Parts",
    "Vandelay Imports",
)

ORDER_COUNT = 24
_ORDER_STATUSES = ("draft", "confirmed", "shipped", "confirmed", "draft", "shipped", "cancelled", "confirmed")
_FIRST_ORDER_AT = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


def product_rows() -> list[dict[str, Any]]:
    """The 30 demo products, in SKU order: ``SKU-0001`` "Steel Bolt Pack" ... ``SKU-0030`` "Bamboo Mug"."""
    rows = []
    for number, (material, item) in enumerate(((m, i) for m in _MATERIALS for i in _ITEMS), start=1):
        rows.append(
            {
                "sku": f"SKU-{number:04d}",
                "name": f"{material} {item}",
                "price": Decimal(150 + (number * 1373) % 9000) / 100,
                "stock": (number * 17) % 120,
                "status": _PRODUCT_STATUS.get(number, "active"),
            }
        )
    return rows


def customer_rows() -> list[dict[str, Any]]:
    """The 12 demo customers; the email is the slugged name at example.com."""
    return [
        {
            "email": f"{name.lower().replace(' ', '-')}@example.com",
            "name": name,
            "credit_limit": Decimal(2500 * (number % 5)),
        }
        for number, name in enumerate(_CUSTOMERS)
    ]


def order_rows() -> list[dict[str, Any]]:
    """The 24 demo orders: order ``n`` belongs to customer ``n % 12`` and has a fixed creation time."""
    return [
        {
            "customer_index": index % len(_CUSTOMERS),
            "created": _FIRST_ORDER_AT + timedelta(days=3 * index, hours=index % 7),
            "status": _ORDER_STATUSES[index % len(_ORDER_STATUSES)],
            "total": Decimal((index * 41_273) % 250_000 + 1999) / 100,
        }
        for index in range(ORDER_COUNT)
    ]


class Command(BaseCommand):
    help = "Create the demo ERP data, the admin and editor logins and the Editors/Public groups (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Reset the demo users (password, active, flags, groups) and groups (permissions) if they exist.",
        )
        parser.add_argument(
            "--allow-other-users",
            action="store_true",
            help="Seed even though the database holds users other than the demo logins (not a demo database).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        _require_tables()
        reset = bool(options["reset"])
        with transaction.atomic():
            others = _users_not_seeded().count()
            if others and not options["allow_other_users"]:
                raise CommandError(
                    f"This database holds {others} user(s) that seed_demo did not create, so it is not a demo "
                    "database; nothing was changed. Point DATABASE_URL (or SQLITE_PATH) at a new database, or pass "
                    "--allow-other-users (make run: SEED_ARGS=--allow-other-users), which still changes none of "
                    "those users. (A demo database seeded before seed_demo kept this record counts too.)"
                )
            created = self._seed_data()
            editors, public = self._seed_groups(reset)
            others_logins = self._seed_users(editors, reset)
        self._summarize(created, editors, public, others_logins)

    def _seed_data(self) -> dict[str, int]:
        created = {"products": 0, "customers": 0, "orders": 0}
        for row in product_rows():
            _, was_created = Product.objects.get_or_create(sku=row.pop("sku"), defaults=row)
            created["products"] += was_created
        customers = []
        for row in customer_rows():
            customer, was_created = Customer.objects.get_or_create(email=row.pop("email"), defaults=row)
            customers.append(customer)
            created["customers"] += was_created
        for row in order_rows():
            _, was_created = SalesOrder.objects.get_or_create(
                customer=customers[row["customer_index"]],
                created=row["created"],
                defaults={"status": row["status"], "total": row["total"]},
            )
            created["orders"] += was_created
        return created

    def _seed_groups(self, reset: bool) -> tuple[Group, Group]:
        # Permissions are normally made by post_migrate; make sure they exist even if it has not run.
        create_permissions(apps.get_app_config("erp_demo"), verbosity=0)
        editors, created = Group.objects.get_or_create(name=EDITORS_GROUP)
        if created or reset:
            editors.permissions.set(_permissions(EDITORS_PERMISSIONS))
        public, created = Group.objects.get_or_create(name=PUBLIC_GROUP)
        if created or reset:
            public.permissions.set(_permissions(PUBLIC_PERMISSIONS))
        return editors, public

    def _seed_users(self, editors: Group, reset: bool) -> set[str]:
        """Create (or with ``reset`` restore) the demo logins; the emails of those held by users it did not create,
        which it leaves as they are."""
        _, admin = _ensure_user(ADMIN_EMAIL, ADMIN_PASSWORD, is_staff=True, is_superuser=True, reset=reset)
        editor, state = _ensure_user(EDITOR_EMAIL, EDITOR_PASSWORD, is_staff=True, is_superuser=False, reset=reset)
        if state == "created" or (state == "ours" and reset):
            editor.groups.set([editors])
            editor.user_permissions.clear()
        return {email for email, found in ((ADMIN_EMAIL, admin), (EDITOR_EMAIL, state)) if found == "other"}

    def _summarize(self, created: dict[str, int], editors: Group, public: Group, others_logins: set[str]) -> None:
        def by_status(model: type[Product] | type[SalesOrder]) -> str:
            counts = dict(model.objects.values_list("status").annotate(n=Count("id")).order_by("status"))
            return ", ".join(f"{counts.get(value, 0)} {value}" for value in model.Status.values)

        write = self.stdout.write
        write(f"Products: {Product.objects.count()} ({by_status(Product)})")
        write(f"Customers: {Customer.objects.count()}")
        write(f"Sales orders: {SalesOrder.objects.count()} ({by_status(SalesOrder)})")
        write(
            f"Created this run: {created['products']} products, {created['customers']} customers, "
            f"{created['orders']} sales orders"
        )
        for group in (editors, public):
            codenames = ", ".join(sorted(group.permissions.values_list("codename", flat=True)))
            write(f"Group {group.name}: {codenames}")
        for role, email, password in (("superuser", ADMIN_EMAIL, ADMIN_PASSWORD),
                                      (f"{EDITORS_GROUP} group", EDITOR_EMAIL, EDITOR_PASSWORD)):  # fmt: skip
            if email in others_logins:
                write(f"Login ({role}): {email} is a user seed_demo did not create: left as it is")
            else:
                write(f"Login ({role}): {email} / {password}")
        write("(Existing demo logins and groups are left as they are; --reset restores them.)")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))


# The user table of databases made before the demo's user model moved from realtime_auth to erp_demo.
OLD_USER_TABLE = "realtime_auth_user"


def _require_tables() -> None:
    """A clear error instead of "no such table" when the user model's table, or seed_demo's record, is missing.

    A demo database made before the user model moved to erp_demo records every migration as applied (the moved
    model's migrations keep their names), so ``migrate`` has nothing to do and cannot create ``erp_demo_user``.
    """
    user_model = get_user_model()
    database = connections[router.db_for_write(user_model)]
    tables = database.introspection.table_names()
    table = user_model._meta.db_table
    if table in tables:
        if SeededUser._meta.db_table not in tables:
            raise CommandError(f"The database has no table {SeededUser._meta.db_table}: run `manage.py migrate` first.")
        return
    if OLD_USER_TABLE not in tables:
        raise CommandError(f"The database has no table {table} for the users: run `manage.py migrate` first.")
    if database.vendor == "sqlite":
        where = f"Delete the database file {database.settings_dict['NAME']}"
    else:
        where = f"Drop and recreate the database {database.settings_dict['NAME']!r}"
    raise CommandError(
        f"This database was made by an older version of the demo: its users are in {OLD_USER_TABLE} and it has no "
        f"table {table} (the demo's user model moved to erp_demo), which migrate cannot convert; nothing was "
        f"changed. {where}, or point DATABASE_URL/SQLITE_PATH at a new database; then run `make run` (or "
        "`manage.py migrate` and `manage.py seed_demo`) again."
    )


def _permissions(codenames: tuple[str, ...]) -> list[Permission]:
    found = list(Permission.objects.filter(content_type__app_label="erp_demo", codename__in=codenames))
    missing = set(codenames) - {permission.codename for permission in found}
    if missing:
        raise LookupError(f"Missing erp_demo permissions: {', '.join(sorted(missing))}")
    return found


def _users_not_seeded() -> Any:
    """The users without seed_demo's record: those it did not create."""
    return get_user_model()._default_manager.exclude(pk__in=SeededUser.objects.values("user"))


def _ensure_user(email: str, password: str, *, is_staff: bool, is_superuser: bool, reset: bool) -> tuple[User, str]:
    """Create the user (and record it); with ``reset``, reset one it created to the documented password, flags and
    active state. Returns it and ``"created"``, ``"ours"`` (created by an earlier run) or ``"other"`` (a user it did
    not create, only there with ``--allow-other-users``: never changed)."""
    user_model = get_user_model()
    user = user_model.objects.filter(email__iexact=email).first()
    if user is None:
        user = user_model.objects.create_user(email, password, is_staff=is_staff, is_superuser=is_superuser)
        SeededUser.objects.create(user=user)
        return user, "created"
    if not SeededUser.objects.filter(user=user).exists():
        return user, "other"
    if not reset:
        return user, "ours"
    wanted = {"is_active": True, "is_staff": is_staff, "is_superuser": is_superuser}
    changed = [field for field, value in wanted.items() if getattr(user, field) != value]
    for field in changed:
        setattr(user, field, wanted[field])
    if not user.check_password(password):
        user.set_password(password)
        changed.append("password")
    if changed:
        user.save(update_fields=changed)
    return user, "ours"
