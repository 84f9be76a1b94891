"""Sample pipeline: a list of numbers written to S3, its summary computed from S3, a job and a schedule."""

import statistics

import dagster as dg

from dagops.runtime.resources import LocationS3

RAW_KEY = "numbers/raw.json"
SUMMARY_KEY = "numbers/summary.json"


@dg.asset(group_name="numbers", description="The numbers 1 to 10, as JSON in the location's S3 prefix.")
def raw_numbers(s3: LocationS3) -> dg.MaterializeResult:
    numbers = list(range(1, 11))
    key = s3.put_json(RAW_KEY, numbers)
    return dg.MaterializeResult(metadata={"s3_key": key, "count": len(numbers)})


@dg.asset(group_name="numbers", deps=[raw_numbers], description="Count, sum and mean of raw_numbers.")
def number_summary(s3: LocationS3) -> dg.MaterializeResult:
    numbers = s3.get_json(RAW_KEY)
    summary = {"count": len(numbers), "sum": sum(numbers), "mean": statistics.fmean(numbers)}
    key = s3.put_json(SUMMARY_KEY, summary)
    return dg.MaterializeResult(metadata={"s3_key": key, **summary})


# In-process: two tiny steps do not need a process each (the default spends seconds per step importing).
numbers_job = dg.define_asset_job(
    "numbers_job", selection=dg.AssetSelection.groups("numbers"), executor_def=dg.in_process_executor
)

numbers_daily = dg.ScheduleDefinition(
    name="numbers_daily",
    job=numbers_job,
    cron_schedule="0 6 * * *",
    execution_timezone="UTC",
)

defs = dg.Definitions(assets=[raw_numbers, number_summary], jobs=[numbers_job], schedules=[numbers_daily])
