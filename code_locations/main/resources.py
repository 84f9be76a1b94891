"""Resources of location ``main``; only these change between environments (set through env vars)."""

from dagops.runtime.resources import location_s3

LOCATION = "main"

RESOURCES = {
    # Reads and writes only s3://$DAGSTER_S3_BUCKET/assets/main/...
    "s3": location_s3(LOCATION),
}
