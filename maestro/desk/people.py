"""The people who do human work, in the `maestro_people` bucket: one Person per id (their token's subject)."""

from __future__ import annotations

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import codec, topics
from maestro.bus import Bus
from maestro.scan import current_entries
from proto.v1.humans import Person


class PeopleStore:
    """People by id: put (add or change), get, list, remove."""

    def __init__(self, bus: Bus) -> None:
        self._js = bus.js
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(topics.BUCKET_PEOPLE)
        return self._kv

    async def put(self, person: Person) -> Person:
        """Store a person, replacing what was stored under their id."""
        await (await self._bucket()).put(topics.person_key(person.id), codec.encode(person))
        return person

    async def get(self, person_id: str) -> Person | None:
        """The person with `person_id`, or None."""
        try:
            entry = await (await self._bucket()).get(topics.person_key(person_id))
        except KeyNotFoundError:
            return None
        return codec.decode(Person, entry.value) if entry.value else None

    async def list(self) -> list[Person]:
        """Everyone, by id."""
        people = [
            codec.decode(Person, entry.value)
            async for entry in current_entries(self._js, topics.BUCKET_PEOPLE)
        ]
        return sorted(people, key=lambda p: p.id)

    async def remove(self, person_id: str) -> Person | None:
        """Forget a person (their claims stand until released or lapsed); who was removed, or None."""
        person = await self.get(person_id)
        if person is not None:
            await (await self._bucket()).purge(topics.person_key(person_id))
        return person
