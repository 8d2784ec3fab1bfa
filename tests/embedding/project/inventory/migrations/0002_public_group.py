"""The group whose permissions the realtime public role holds (LIKHA_REALTIME["PUBLIC_ROLE"], default "Public")."""

from django.db import migrations


def create_public_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name="Public")


class Migration(migrations.Migration):
    dependencies = [("auth", "0001_initial"), ("inventory", "0001_initial")]

    operations = [migrations.RunPython(create_public_group, migrations.RunPython.noop)]
