"""The gateway's memory of facts that stay true: confirmations kept, refusals asked again."""

from gateway_svc.facts import Facts


async def test_a_confirmed_fact_is_not_asked_again_and_a_refused_one_is() -> None:
    facts = Facts()
    asked: list[str] = []

    async def answer(fact: str, value: bool) -> bool:
        asked.append(fact)
        return value

    assert await facts.confirm("yes", lambda: answer("yes", True))
    assert await facts.confirm("yes", lambda: answer("yes", True))
    assert not await facts.confirm("no", lambda: answer("no", False))
    assert not await facts.confirm("no", lambda: answer("no", False))
    assert asked == ["yes", "no", "no"]


def test_the_least_recently_used_fact_goes_first() -> None:
    facts = Facts(capacity=2)
    facts.learn("a")
    facts.learn("b")
    assert facts.known("a")  # a is now the more recent
    facts.learn("c")
    assert (facts.known("a"), facts.known("b"), facts.known("c")) == (True, False, True)
    assert len(facts) == 2
