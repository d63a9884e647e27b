from textstats import count_lines, longest_line


def test_every_line_counts_even_the_last_without_a_break() -> None:
    assert count_lines("one\ntwo\nthree") == 3


def test_no_text_has_no_lines() -> None:
    assert count_lines("") == 0


def test_the_first_of_the_longest_lines_wins() -> None:
    assert longest_line("a\nabc\nxyz\nab\n") == "abc"
