"""runs.fooling.phase_seconds: where a MAP-Elites session's wall time went."""

from fooljax.runs.fooling import phase_seconds


def test_phases_and_the_strict_count():
    # process start 0; loop 1.0..10.5; chunks of 50, 50, 25 generations; end 11.0
    p = phase_seconds(0.0, (1.0, 10.5), [3.5, 3.0, 1.5], 11.0, [50, 50, 25])
    assert p["start_up"] == 1.0 and p["finishing"] == 0.5
    assert p["generations"] == 8.0 and p["between_chunks"] == 1.5
    assert p["first_chunk"] == 3.5 and p["chunk_median"] == 3.0
    assert p["outside_generations_fraction"] == round(1 - 8.0 / 11.0, 4)
    # median 0.06 s a generation (3.0/50 and 1.5/25; the first chunk's 0.07 is
    # compilation) x 125 generations
    assert p["steady_generations"] == 7.5
    assert p["outside_steady_fraction"] == round(1 - 7.5 / 11.0, 4)


def test_without_chunk_sizes_no_strict_count():
    p = phase_seconds(0.0, (1.0, 2.0), [1.0], 2.5)
    assert "steady_generations" not in p and p["generations"] == 1.0
