"""Customer360Rebuild: Customer360Projection's statements applied to rows in memory (rebuilds)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from uuid import UUID

import orjson

from domain.customer import (
    Contact,
    CustomerAbsorbedDuplicate,
    CustomerBillingDetailsRecorded,
    CustomerConsentRecorded,
    CustomerContactAdded,
    CustomerContactRemoved,
    CustomerEnrolledInCampaign,
    CustomerErased,
    CustomerInteractionLogged,
    CustomerMerged,
    CustomerOwnerAssigned,
    CustomerProfileUpdated,
    CustomerRegistered,
    CustomerTagged,
    CustomerTierChanged,
    CustomerUntagged,
)
from domain.lead import (
    LeadActivityLogged,
    LeadAssigned,
    LeadCaptured,
    LeadConversionRequested,
    LeadConverted,
    LeadDisqualified,
    LeadErased,
    LeadQualified,
    LeadReopened,
    LeadScored,
)
from domain.opportunity import (
    OpportunityAmountChanged,
    OpportunityExpectedCloseChanged,
    OpportunityLost,
    OpportunityOpened,
    OpportunityReopened,
    OpportunityStageChanged,
    OpportunityWon,
)
from domain.personal import REDACTED
from domain.shared import DomainEvent
from domain.ticket import (
    TicketAssigned,
    TicketClosed,
    TicketEscalated,
    TicketFirstResponded,
    TicketOpened,
    TicketPausedForCustomer,
    TicketPriorityChanged,
    TicketRated,
    TicketReopened,
    TicketResolved,
    TicketResumed,
    TicketSlaAtRisk,
    TicketSlaBreached,
    TicketStatus,
)
from projections.bulk import BulkRebuild
from projections.customer_360.erasure import redacted_entry
from projections.customer_360.projection import STATUS_AFTER, Customer360Projection
from projections.customer_360.writes import aggregate_type, event_row, json_text
from projections.erasure import erased_ids, redact
from projections.readmodel import ReadModelView, handles


class Customer360Rebuild(BulkRebuild, rebuilds=Customer360Projection):
    """Mirrors each handler of Customer360Projection; the timeline is streamed, not kept."""

    streams = ("timeline",)

    def __init__(self, view: ReadModelView, columns: dict[str, tuple[str, ...]]) -> None:
        super().__init__(view, columns)
        self.timeline = self.stream_of["timeline"]
        self.staged_of: dict[UUID, list[str]] = defaultdict(list)  # lead -> its events' ids

    # --- the customer's own events --------------------------------------------------------------

    @handles(CustomerRegistered)
    def registered(self, event: CustomerRegistered) -> None:
        self.tables["customers"].add(
            event.originator_id,
            customer_id=event.originator_id,
            kind=event.kind,
            name=event.name,
            email=event.email,
            phone=event.phone,
            region=event.region,
            industry=event.industry,
            owner=event.owner,
            source=event.source,
            tier="standard",
            registered_at=event.timestamp,
            updated_at=event.timestamp,
            id_number=None,
            bank_account=None,
        )
        self._record(event, event.originator_id)

    @handles(CustomerProfileUpdated)
    def profile_updated(self, event: CustomerProfileUpdated) -> None:
        self._change_customer(event, **event.changes)

    @handles(CustomerOwnerAssigned)
    def owner_assigned(self, event: CustomerOwnerAssigned) -> None:
        self._change_customer(event, owner=event.owner)

    @handles(CustomerTierChanged)
    def tier_changed(self, event: CustomerTierChanged) -> None:
        self._change_customer(event, tier=event.tier)

    @handles(CustomerMerged)
    def merged(self, event: CustomerMerged) -> None:
        self._change_customer(event, merged_into=event.survivor_id, merged_at=event.timestamp)

    @handles(CustomerInteractionLogged)
    def interaction_logged(self, event: CustomerInteractionLogged) -> None:
        row = self.tables["customers"].get(event.originator_id)
        if row is not None:  # greatest() skips NULL
            last = row["last_interaction_at"]
            at = event.occurred_at
            row["last_interaction_at"] = at if last is None else max(last, at)
        self._change_customer(event)

    @handles(CustomerContactAdded)
    def contact_added(self, event: CustomerContactAdded) -> None:
        self._add_contacts(event.originator_id, [event.contact])
        self._change_customer(event)

    @handles(CustomerContactRemoved)
    def contact_removed(self, event: CustomerContactRemoved) -> None:
        self.tables["contacts"].delete((event.originator_id, event.contact_id))
        self._change_customer(event)

    @handles(CustomerTagged)
    def tagged(self, event: CustomerTagged) -> None:
        self._add_tags(event.originator_id, [event.tag])
        self._change_customer(event)

    @handles(CustomerUntagged)
    def untagged(self, event: CustomerUntagged) -> None:
        self.tables["tags"].delete((event.originator_id, event.tag))
        self._change_customer(event)

    @handles(CustomerAbsorbedDuplicate)
    def absorbed(self, event: CustomerAbsorbedDuplicate) -> None:
        self._add_tags(event.originator_id, event.tags)
        self._add_contacts(event.originator_id, event.contacts)
        self._change_customer(event)

    @handles(CustomerConsentRecorded)
    def consent_recorded(self, event: CustomerConsentRecorded) -> None:
        self.tables["consents"].put(
            (event.originator_id, event.channel),
            customer_id=event.originator_id,
            channel=event.channel,
            granted=event.granted,
            legal_basis=event.legal_basis,
            recorded_at=event.timestamp,
        )
        if not event.granted:
            campaigns = self.tables["campaigns"]
            for key in [
                key for key, row in campaigns.rows.items() if key[0] == event.originator_id
            ]:
                if campaigns.rows[key]["channel"] == event.channel:
                    campaigns.delete(key)
        self._change_customer(event)

    @handles(CustomerBillingDetailsRecorded)
    def billing_details(self, event: CustomerBillingDetailsRecorded) -> None:
        self._change_customer(event, id_number=event.id_number, bank_account=event.bank_account)

    @handles(CustomerEnrolledInCampaign)
    def enrolled(self, event: CustomerEnrolledInCampaign) -> None:
        self.tables["campaigns"].put(
            (event.originator_id, event.campaign),
            customer_id=event.originator_id,
            campaign=event.campaign,
            channel=event.channel,
            enrolled_at=event.timestamp,
        )
        self._change_customer(event)

    @handles(CustomerErased)
    def erased(self, event: CustomerErased) -> None:
        self._erase(erased_ids(event), event)
        campaigns = self.tables["campaigns"]
        for key in [key for key in campaigns.rows if key[0] == event.originator_id]:
            campaigns.delete(key)
        self._change_customer(event)

    # --- leads: staged until LeadConverted names their customer -------------------------------

    @handles(
        LeadCaptured,
        LeadScored,
        LeadAssigned,
        LeadActivityLogged,
        LeadQualified,
        LeadDisqualified,
        LeadReopened,
        LeadConversionRequested,
    )
    def lead_event(self, event: DomainEvent) -> None:
        row = event_row(event, self.position, for_copy=True)
        self.tables["lead_events"].add(row["event_id"], **row)
        self.staged_of[event.originator_id].append(row["event_id"])

    @handles(LeadConverted)
    def lead_converted(self, event: LeadConverted) -> None:
        staged = self.tables["lead_events"]
        for event_id in self.staged_of.pop(event.originator_id, ()):
            row = staged.delete(event_id)
            if row is not None:
                row.update(customer_id=event.customer_id, aggregate_type="lead")
                self.timeline.append(row)
        self.tables["leads"].add(
            event.originator_id,
            lead_id=event.originator_id,
            customer_id=event.customer_id,
            opportunity_id=event.opportunity_id,
            converted_at=event.timestamp,
        )
        self._record(event, event.customer_id)

    @handles(LeadErased)
    def lead_erased(self, event: LeadErased) -> None:
        self._erase(erased_ids(event), event)
        converted = self.tables["leads"].get(event.originator_id)
        if converted is not None:
            self._record(event, converted["customer_id"])
        else:
            self.lead_event(event)

    # --- opportunities --------------------------------------------------------------------------

    @handles(OpportunityOpened)
    def opportunity_opened(self, event: OpportunityOpened) -> None:
        self.tables["opportunities"].add(
            event.originator_id,
            opportunity_id=event.originator_id,
            customer_id=event.customer_id,
            title=event.title,
            stage="qualification",
            amount=event.amount.amount,
            currency=event.amount.currency,
        )
        self._record(event, event.customer_id)

    @handles(OpportunityStageChanged, OpportunityReopened)
    def opportunity_moved(self, event: OpportunityStageChanged | OpportunityReopened) -> None:
        self._change_child(event, "opportunities", stage=event.stage)

    @handles(OpportunityAmountChanged)
    def opportunity_amount(self, event: OpportunityAmountChanged) -> None:
        amount, currency = event.amount.amount, event.amount.currency
        self._change_child(event, "opportunities", amount=amount, currency=currency)

    @handles(OpportunityExpectedCloseChanged)
    def opportunity_close(self, event: OpportunityExpectedCloseChanged) -> None:
        self._change_child(event, "opportunities")

    @handles(OpportunityWon)
    def opportunity_won(self, event: OpportunityWon) -> None:
        amount, currency = event.amount.amount, event.amount.currency
        self._change_child(event, "opportunities", stage="won", amount=amount, currency=currency)

    @handles(OpportunityLost)
    def opportunity_lost(self, event: OpportunityLost) -> None:
        self._change_child(event, "opportunities", stage="lost")

    # --- tickets --------------------------------------------------------------------------------

    @handles(TicketOpened)
    def ticket_opened(self, event: TicketOpened) -> None:
        self.tables["tickets"].add(
            event.originator_id,
            ticket_id=event.originator_id,
            customer_id=event.customer_id,
            subject=event.subject,
            status=TicketStatus.OPEN.value,
        )
        self._record(event, event.customer_id)

    @handles(TicketPausedForCustomer, TicketResumed, TicketResolved, TicketClosed, TicketReopened)
    def ticket_status(self, event: DomainEvent) -> None:
        self._change_child(event, "tickets", status=STATUS_AFTER[type(event)].value)

    @handles(TicketRated)
    def ticket_rated(self, event: TicketRated) -> None:
        self._change_child(event, "tickets", csat=event.score)

    @handles(
        TicketAssigned,
        TicketFirstResponded,
        TicketEscalated,
        TicketPriorityChanged,
        TicketSlaAtRisk,
        TicketSlaBreached,
    )
    def ticket_worked(self, event: DomainEvent) -> None:
        self._change_child(event, "tickets")

    # --- the shared writes (writes.py and erasure.py, in memory) --------------------------------

    def _erase(self, ids: list[UUID], event: DomainEvent) -> None:
        """erasure.erase_rows, in memory. The timeline is not kept here, and needs no change:
        the log already reads every personal value of an erased record as redacted."""
        erased = set(ids)
        customers = self.tables["customers"]
        for row in filter(None, map(customers.get, erased)):
            row.update(
                name=REDACTED,
                email=redact(row["email"]),
                phone=redact(row["phone"]),
                id_number=redact(row["id_number"]),
                bank_account=redact(row["bank_account"]),
                erased_at=row["erased_at"] or event.timestamp,
                updated_at=event.timestamp,
            )
        for row in self.tables["contacts"]:
            if row["customer_id"] in erased:
                row.update(name=REDACTED, email=redact(row["email"]), phone=redact(row["phone"]))
        for row in self.tables["tickets"]:
            if row["ticket_id"] in erased or row["customer_id"] in erased:
                row["subject"] = REDACTED
        staged = self.tables["lead_events"]
        for lead_id in erased:
            for event_id in self.staged_of.get(lead_id, ()):
                staged_row = staged.get(event_id)
                if staged_row is None:
                    continue
                old = orjson.loads(staged_row["payload"])
                entry = redacted_entry(staged_row["type"], staged_row["summary"], old)
                if entry is not None:
                    staged_row["summary"], payload = entry
                    staged_row["payload"] = json_text(payload)

    def _change_customer(self, event: DomainEvent, **columns: Any) -> None:
        self.tables["customers"].set(event.originator_id, **columns, updated_at=event.timestamp)
        self._record(event, event.originator_id)

    def _change_child(self, event: DomainEvent, table: str, **columns: Any) -> None:
        rows = self.tables[table]
        row = rows.set(event.originator_id, **columns) if columns else rows.get(event.originator_id)
        if row is not None:  # no row, no timeline entry (as the live INSERT ... SELECT)
            self._record(event, row["customer_id"])

    def _record(self, event: DomainEvent, customer_id: UUID) -> None:
        row = event_row(event, self.position, for_copy=True)
        row["customer_id"] = customer_id
        row["aggregate_type"] = aggregate_type(type(event))
        self.timeline.append(row)

    def _add_tags(self, customer_id: UUID, tags: Iterable[str]) -> None:
        for tag in tags:
            self.tables["tags"].add_new((customer_id, tag), customer_id=customer_id, tag=tag)

    def _add_contacts(self, customer_id: UUID, contacts: Iterable[Contact]) -> None:
        for contact in contacts:
            self.tables["contacts"].put(
                (customer_id, contact.contact_id),
                customer_id=customer_id,
                contact_id=contact.contact_id,
                name=contact.name,
                title=contact.title,
                email=contact.email,
                phone=contact.phone,
            )
