"""Random sequences of valid and invalid customer commands keep the customer's invariants."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.customer import KEEP, Contact, Customer
from domain.shared import DomainError, DomainEvent, FixedClock, Snapshot, command_context
from domain.values import normalise_email, normalise_phone
from tests.domain.scenario import ACTOR, MONDAY_9AM, given, through_store
from tests.strategies import cn_mobiles, emails, names, owners, regions, short_text

CUSTOMER_ID = UUID(int=1)
SURVIVOR_ID = UUID(int=2)

blanks = st.sampled_from(["", "   ", "\t"])
bad_emails = st.sampled_from(["not-an-email", "wei@", "@acme.com"])
bad_phones = st.sampled_from(["12345", "call me"])
# Small pools, so that re-tagging, re-adding and re-logging happen often.
given_tags = st.sampled_from(["vip", " VIP ", "Export", "export ", "key account"])
tags = given_tags | blanks
contact_ids = st.sampled_from([UUID(int=101), UUID(int=102), UUID(int=103)])
contact_names = st.sampled_from(["Zhang Wei", " Li Na ", " "])
interaction_ids = st.sampled_from([UUID(int=201), UUID(int=202), UUID(int=203), UUID(int=204)])


def valid_if(valid: bool, values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, bool]]:
    return values.map(lambda value: (value, valid))


def text_or_blank(text: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, bool]]:
    return valid_if(True, text) | valid_if(False, blanks)


def choice(good: tuple[str, ...], bad: tuple[str, ...]) -> st.SearchStrategy[tuple[str, bool]]:
    return valid_if(True, st.sampled_from(good)) | valid_if(False, st.sampled_from(bad))


# Mostly the values the customer starts with, written differently, so no-op updates happen.
acme_names = st.sampled_from(["Acme Trading", " Acme Trading ", "Acme Group"]) | names
acme_emails = st.sampled_from(["sales@acme.com", " SALES@acme.com", "buy@acme.com"]) | emails
acme_phones = st.sampled_from(["138 0013 8000", "+86 13800138000", "139 1234 5678"]) | cn_mobiles
optional_emails = valid_if(True, acme_emails | st.none() | blanks) | valid_if(False, bad_emails)
optional_phones = valid_if(True, acme_phones | st.none()) | valid_if(False, bad_phones)
kept = valid_if(True, st.just(KEEP))


class CustomerMachine(RuleBasedStateMachine):
    """Drives one customer (plus the survivors and duplicates it meets) with random commands."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FixedClock(MONDAY_9AM)
        self.recorded: list[DomainEvent] = []
        self.merged_state: dict[str, Any] | None = None
        self.tags: set[str] = set()  # what the tags should be, by a model simpler than the code
        self.last_interaction_at: datetime | None = None
        self.absorbed: list[Customer] = []
        self.next_id = 1000

    @contextmanager
    def acting(self) -> Iterator[None]:
        with command_context(actor=ACTOR, clock=self.clock):
            yield

    def other_customer(self, customer_id: UUID | None = None) -> Customer:
        self.next_id += 1
        with self.acting():
            return Customer.register(
                customer_id=customer_id or UUID(int=self.next_id),
                kind="person",
                name="Duplicate",
                region="east",
                owner="user:bob",
            )

    def run(self, command: Callable[[Customer], Any], valid: bool, changes: bool = True) -> bool:
        """Run a command and check its outcome; True if it was accepted.

        An invalid command (or any after a merge) must fail and record nothing; a valid one must
        pass and record one event, or none when it `changes` nothing.
        """
        valid = valid and not self.customer.is_merged
        before = self.customer.state()
        try:
            with self.acting():
                command(self.customer)
        except DomainError:
            assert not valid, "a valid command was rejected"
            assert self.customer.pending_events == []
            assert self.customer.state() == before
        else:
            assert valid, "an invalid command was accepted"
            events = self.customer.collect_events()
            assert len(events) == (1 if changes else 0), events
            self.recorded += events
        self.clock.advance(minutes=7)
        return valid

    @initialize(
        kind=st.sampled_from(["company", "person"]),
        name=acme_names,
        email=acme_emails | st.none(),
        phone=acme_phones | st.none(),
        region=regions,
        owner=owners,
    )
    def register(self, **fields: Any) -> None:
        with self.acting():
            self.customer = Customer.register(customer_id=CUSTOMER_ID, **fields)
        self.recorded += self.customer.collect_events()
        self.survivor = self.other_customer(SURVIVOR_ID)

    @rule(
        kind=choice(("company", "person"), ("robot",)),
        name=text_or_blank(names),
        region=text_or_blank(regions),
        owner=text_or_blank(owners),
        email=optional_emails,
        phone=optional_phones,
    )
    def register_another(self, **fields: tuple[Any, bool]) -> None:
        valid = all(ok for _, ok in fields.values())
        values = {field: value for field, (value, _) in fields.items()}
        try:
            Customer.register(customer_id=UUID(int=3), **values)
        except DomainError:
            assert not valid
        else:
            assert valid

    @rule(
        name=kept | text_or_blank(acme_names),
        email=kept | optional_emails,
        phone=kept | optional_phones,
        region=kept | text_or_blank(regions),
        industry=kept | valid_if(True, st.sampled_from(["retail", " Retail", ""])),
    )
    def update_profile(self, **fields: tuple[Any, bool]) -> None:
        valid = all(ok for _, ok in fields.values())
        values = {field: value for field, (value, _) in fields.items()}
        changes = valid and any(
            expected(field, value) != getattr(self.customer, field)
            for field, value in values.items()
            if value is not KEEP
        )
        if self.run(lambda c: c.update_profile(**values), valid, changes):
            for field, value in values.items():
                if value is not KEEP:
                    assert getattr(self.customer, field) == expected(field, value)

    @rule(
        contact_id=contact_ids,
        name=contact_names,
        title=st.sampled_from(["", "Buyer"]),
        email=st.sampled_from([None, "wei@acme.com"]),
    )
    def add_contact(self, contact_id: UUID, name: str, title: str, email: str | None) -> None:
        existing = self.customer.contacts.get(contact_id)
        same = Contact(
            contact_id=contact_id, name=name.strip(), title=title, email=email, phone=None
        )
        valid = bool(name.strip()) and existing in (None, same)
        self.run(
            lambda c: c.add_contact(contact_id=contact_id, name=name, title=title, email=email),
            valid,
            changes=existing is None,
        )

    @rule(contact_id=contact_ids)
    def remove_contact(self, contact_id: UUID) -> None:
        self.run(lambda c: c.remove_contact(contact_id), contact_id in self.customer.contacts)

    @rule(tag=tags)
    def tag(self, tag: str) -> None:
        normalised = tag.strip().lower()
        self.run(lambda c: c.tag(tag), bool(normalised), normalised not in self.tags)
        if normalised and not self.customer.is_merged:
            self.tags.add(normalised)

    @rule(tag=tags)
    def untag(self, tag: str) -> None:
        normalised = tag.strip().lower()
        self.run(lambda c: c.untag(tag), bool(normalised), normalised in self.tags)
        if not self.customer.is_merged:
            self.tags.discard(normalised)

    @rule(owner=text_or_blank(owners))
    def assign_owner(self, owner: tuple[str, bool]) -> None:
        changes = owner[0].strip() != self.customer.owner
        self.run(lambda c: c.assign_owner(owner[0]), owner[1], changes)

    @rule(
        interaction_id=interaction_ids,
        kind=choice(("call", "visit", "email", "wechat", "meeting"), ("fax",)),
        summary=text_or_blank(short_text),
        when=st.sampled_from(["past", "past", "future", "without time zone"]),
        minutes_ago=st.integers(0, 60 * 24 * 30),
        contact_id=st.none() | contact_ids,
    )
    def log_interaction(
        self,
        interaction_id: UUID,
        kind: tuple[str, bool],
        summary: tuple[str, bool],
        when: str,
        minutes_ago: int,
        contact_id: UUID | None,
    ) -> None:
        known_contact = contact_id is None or contact_id in self.customer.contacts
        valid = kind[1] and summary[1] and when == "past" and known_contact
        occurred_at = self.clock.at - timedelta(minutes=minutes_ago)
        if when == "future":
            occurred_at = self.clock.at + timedelta(minutes=minutes_ago + 1)
        elif when == "without time zone":
            occurred_at = occurred_at.replace(tzinfo=None)
        changes = interaction_id not in self.customer.interaction_ids
        accepted = self.run(
            lambda c: c.log_interaction(
                interaction_id=interaction_id,
                kind=kind[0],
                summary=summary[0],
                occurred_at=occurred_at,
                contact_id=contact_id,
            ),
            valid,
            changes,
        )
        if accepted and changes:
            self.last_interaction_at = max(occurred_at, self.last_interaction_at or occurred_at)

    @rule(
        channel=choice(("email", "sms", "phone", "wechat"), ("fax",)),
        granted=st.booleans(),
        basis=choice(("consent", "contract", "legitimate_interests"), ("whim",)),
    )
    def record_consent(
        self, channel: tuple[Any, bool], granted: bool, basis: tuple[Any, bool]
    ) -> None:
        current = self.customer.consents.get(channel[0])
        self.run(
            lambda c: c.record_consent(channel[0], granted=granted, legal_basis=basis[0]),
            channel[1] and basis[1],
            changes=current is None
            or (current.granted, current.legal_basis) != (granted, basis[0]),
        )

    @rule(
        tier=choice(("standard", "silver", "gold", "platinum"), ("diamond",)),
        reason=text_or_blank(short_text),
    )
    def change_tier(self, tier: tuple[Any, bool], reason: tuple[str, bool]) -> None:
        changes = tier[0] != self.customer.tier
        self.run(lambda c: c.change_tier(tier[0], reason=reason[0]), tier[1] and reason[1], changes)

    # Mostly invalid targets: a valid merge freezes the customer for the rest of the run.
    @rule(
        into=st.sampled_from(["survivor", "itself", "merged customer", "itself", "merged customer"])
    )
    def merge_into(self, into: str) -> None:
        survivor = {"survivor": self.survivor, "itself": self.customer}.get(into)
        if survivor is None:
            survivor = self.other_customer()
            with self.acting():
                survivor.merge_into(self.other_customer())
        self.run(lambda c: c.merge_into(survivor), survivor is self.survivor)
        if self.customer.is_merged and self.merged_state is None:
            self.merged_state = self.customer.state()

    @rule(
        duplicate=st.sampled_from(["fresh", "itself", "merged elsewhere", "merged here", "again"]),
        dup_tags=st.lists(given_tags, max_size=3),
        dup_contact=st.none() | contact_ids,
    )
    def absorb(self, duplicate: str, dup_tags: list[str], dup_contact: UUID | None) -> None:
        if duplicate == "itself":
            dup, valid = self.customer, False
        elif duplicate == "again" and self.absorbed:
            dup, valid = self.absorbed[0], True
        else:
            dup, valid = self.other_customer(), duplicate != "merged elsewhere"
            with self.acting():
                for tag in dup_tags:
                    dup.tag(tag)
                if dup_contact is not None:
                    dup.add_contact(contact_id=dup_contact, name="Wang Fang")
                if duplicate == "merged elsewhere":
                    dup.merge_into(self.survivor)
                elif duplicate == "merged here" and not self.customer.is_merged:
                    dup.merge_into(self.customer)
        self.run(lambda c: c.absorb(dup), valid, changes=dup.id not in self.customer.absorbed_ids)
        if dup.id in self.customer.absorbed_ids and dup not in self.absorbed:
            self.absorbed.append(dup)
            self.tags |= dup.tags

    @invariant()
    def version_counts_the_recorded_events(self) -> None:
        assert self.customer.version == len(self.recorded)
        assert [e.originator_version for e in self.recorded] == list(
            range(1, len(self.recorded) + 1)
        )

    @invariant()
    def tags_are_a_set_of_normalised_strings(self) -> None:
        assert all(tag and tag == tag.strip().lower() for tag in self.customer.tags)
        assert self.customer.tags == self.tags

    @invariant()
    def the_last_interaction_is_the_latest_one_logged(self) -> None:
        assert self.customer.last_interaction_at == self.last_interaction_at

    @invariant()
    def contacts_are_keyed_by_their_unique_ids(self) -> None:
        assert all(key == contact.contact_id for key, contact in self.customer.contacts.items())

    @invariant()
    def a_merged_customer_never_changes_again(self) -> None:
        if self.merged_state is not None:
            assert self.customer.state() == self.merged_state

    @invariant()
    def the_stored_events_rebuild_the_same_customer(self) -> None:
        rebuilt = given(*through_store(self.recorded))
        assert rebuilt.state() == self.customer.state()
        assert Snapshot.take(self.customer).mutate(None).state() == self.customer.state()


def expected(field: str, value: str | None) -> str | None:
    """What a valid profile value should be stored as."""
    if field not in ("email", "phone"):
        return None if value is None else value.strip()
    if value is None or not value.strip():
        return None
    return normalise_email(value) if field == "email" else normalise_phone(value)


CustomerMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestCustomerMachine = CustomerMachine.TestCase
