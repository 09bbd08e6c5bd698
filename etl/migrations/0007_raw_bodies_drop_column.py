from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("etl", "0006_raw_bodies")]

    operations = [
        migrations.RemoveField(model_name="rawrecord", name="legacy_body"),
        migrations.AlterField(
            model_name="rawrecord",
            name="last_seen_at",
            field=models.DateTimeField(
                help_text="When a run last fetched this content; retention counts from here."
            ),
        ),
        migrations.AddIndex(
            model_name="rawrecord",
            index=models.Index(fields=["last_seen_at"], name="rawrecord_seen_idx"),
        ),
    ]
