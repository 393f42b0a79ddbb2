"""Statistics, memory readings and the write counter of the benchmarks."""

import pytest

from bench import support


def test_percentile_is_nearest_rank():
    values = list(range(1, 21))

    assert support.percentile(values, 0.95) == 19
    assert support.percentile(values, 0.5) == 10
    assert support.percentile([], 0.95) is None


def test_summary_is_in_milliseconds():
    summary = support.summarize_ms([0.010, 0.020, 0.030])

    assert summary == {"n": 3, "median_ms": 20.0, "p95_ms": 30.0, "max_ms": 30.0}


def test_memory_readings_are_positive_megabytes():
    assert support.rss_mb() > 0
    assert support.peak_rss_mb() >= support.rss_mb() * 0.5
    support.reset_window_peak()
    assert support.window_peak_mb() > 0


@pytest.mark.django_db
def test_write_counter_counts_inserts_and_updates_per_table():
    from django.contrib.auth import get_user_model

    with support.counting_writes() as writes:
        user = support.make_broker()
        get_user_model().objects.filter(pk=user.pk).update(first_name="B")
        list(get_user_model().objects.all())

    assert writes.statements["INSERT auth_user"] == 1
    assert writes.statements["UPDATE auth_user"] == 1
    assert writes.total("auth_user") == 2


def test_time_spent_in_wraps_and_restores():
    class Thing:
        def work(self, value):
            return value * 2

    with support.time_spent_in(
        {"work": (Thing, "work"), "gone": (Thing, "missing")}
    ) as spent:
        assert Thing().work(2) == 4

    assert spent["work"] >= 0
    assert spent["gone"] is None
    assert Thing.work.__name__ == "work"
    assert not hasattr(Thing.work, "__wrapped__")


def test_time_spent_in_keeps_another_threads_time_apart():
    import threading

    class Thing:
        def work(self):
            return "done"

    with support.time_spent_in({"work": (Thing, "work")}) as spent:
        Thing().work()
        helper = threading.Thread(target=Thing().work)
        helper.start()
        helper.join()

    assert set(spent) == {"work", "work (ahead)"}
    assert spent["work"] >= 0 and spent["work (ahead)"] >= 0
