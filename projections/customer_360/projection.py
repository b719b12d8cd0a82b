"""Customer360Projection: fills Customer 360° from customer, lead, opportunity and ticket events."""

from __future__ import annotations

from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL

from domain.customer import (
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
from projections.customer_360.erasure import erase_rows, record_lead_erasure
from projections.customer_360.view import EVENT_COLUMNS
from projections.customer_360.writes import (
    add_contacts,
    add_tags,
    change_child,
    change_customer,
    insert_event,
    record,
)
from projections.erasure import erased_ids
from projections.readmodel import ReadModelProjection, handles


class Customer360Projection(ReadModelProjection):
    """Fills `customer_360` from customer, lead, opportunity and ticket events."""

    name = "customer_360"

    # --- the customer's own events --------------------------------------------------------------

    @handles(CustomerRegistered)
    def registered(self, curs: Cursor[DictRow], event: CustomerRegistered) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (customer_id, kind, name, email, phone, region, industry, owner, "
                "source, tier, registered_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'standard', %s, %s)"
            ).format(self.view.table("customers")),
            (
                event.originator_id,
                event.kind,
                event.name,
                event.email,
                event.phone,
                event.region,
                event.industry,
                event.owner,
                event.source,
                event.timestamp,
                event.timestamp,
            ),
        )
        record(self.view, curs, event, self.position, event.originator_id)

    @handles(CustomerProfileUpdated)
    def profile_updated(self, curs: Cursor[DictRow], event: CustomerProfileUpdated) -> None:
        change_customer(self.view, curs, event, self.position, **event.changes)

    @handles(CustomerOwnerAssigned)
    def owner_assigned(self, curs: Cursor[DictRow], event: CustomerOwnerAssigned) -> None:
        change_customer(self.view, curs, event, self.position, owner=event.owner)

    @handles(CustomerTierChanged)
    def tier_changed(self, curs: Cursor[DictRow], event: CustomerTierChanged) -> None:
        change_customer(self.view, curs, event, self.position, tier=event.tier)

    @handles(CustomerMerged)
    def merged(self, curs: Cursor[DictRow], event: CustomerMerged) -> None:
        change_customer(
            self.view,
            curs,
            event,
            self.position,
            merged_into=event.survivor_id,
            merged_at=event.timestamp,
        )

    @handles(CustomerInteractionLogged)
    def interaction_logged(self, curs: Cursor[DictRow], event: CustomerInteractionLogged) -> None:
        # greatest() skips NULL; a backdated interaction never hides a later one.
        curs.execute(
            SQL(
                "UPDATE {} SET last_interaction_at = greatest(last_interaction_at, %s) "
                "WHERE customer_id = %s"
            ).format(self.view.table("customers")),
            (event.occurred_at, event.originator_id),
        )
        change_customer(self.view, curs, event, self.position)

    @handles(CustomerContactAdded)
    def contact_added(self, curs: Cursor[DictRow], event: CustomerContactAdded) -> None:
        add_contacts(self.view, curs, event.originator_id, [event.contact])
        change_customer(self.view, curs, event, self.position)

    @handles(CustomerContactRemoved)
    def contact_removed(self, curs: Cursor[DictRow], event: CustomerContactRemoved) -> None:
        curs.execute(
            SQL("DELETE FROM {} WHERE customer_id = %s AND contact_id = %s").format(
                self.view.table("contacts")
            ),
            (event.originator_id, event.contact_id),
        )
        change_customer(self.view, curs, event, self.position)

    @handles(CustomerTagged)
    def tagged(self, curs: Cursor[DictRow], event: CustomerTagged) -> None:
        add_tags(self.view, curs, event.originator_id, [event.tag])
        change_customer(self.view, curs, event, self.position)

    @handles(CustomerUntagged)
    def untagged(self, curs: Cursor[DictRow], event: CustomerUntagged) -> None:
        curs.execute(
            SQL("DELETE FROM {} WHERE customer_id = %s AND tag = %s").format(
                self.view.table("tags")
            ),
            (event.originator_id, event.tag),
        )
        change_customer(self.view, curs, event, self.position)

    @handles(CustomerAbsorbedDuplicate)
    def absorbed(self, curs: Cursor[DictRow], event: CustomerAbsorbedDuplicate) -> None:
        add_tags(self.view, curs, event.originator_id, event.tags)
        add_contacts(self.view, curs, event.originator_id, event.contacts)
        change_customer(self.view, curs, event, self.position)

    @handles(CustomerConsentRecorded)
    def consent_recorded(self, curs: Cursor[DictRow], event: CustomerConsentRecorded) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (customer_id, channel, granted, legal_basis, recorded_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (customer_id, channel) DO UPDATE SET "
                "granted = EXCLUDED.granted, legal_basis = EXCLUDED.legal_basis, "
                "recorded_at = EXCLUDED.recorded_at"
            ).format(self.view.table("consents")),
            (event.originator_id, event.channel, event.granted, event.legal_basis, event.timestamp),
        )
        if not event.granted:  # a withdrawal ends the campaigns that reach them on the channel
            curs.execute(
                SQL("DELETE FROM {} WHERE customer_id = %s AND channel = %s").format(
                    self.view.table("campaigns")
                ),
                (event.originator_id, event.channel),
            )
        change_customer(self.view, curs, event, self.position)

    @handles(CustomerBillingDetailsRecorded)
    def billing_details(self, curs: Cursor[DictRow], event: CustomerBillingDetailsRecorded) -> None:
        change_customer(
            self.view,
            curs,
            event,
            self.position,
            id_number=event.id_number,
            bank_account=event.bank_account,
        )

    @handles(CustomerEnrolledInCampaign)
    def enrolled(self, curs: Cursor[DictRow], event: CustomerEnrolledInCampaign) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (customer_id, campaign, channel, enrolled_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (customer_id, campaign) DO UPDATE SET "
                "channel = EXCLUDED.channel, enrolled_at = EXCLUDED.enrolled_at"
            ).format(self.view.table("campaigns")),
            (event.originator_id, event.campaign, event.channel, event.timestamp),
        )
        change_customer(self.view, curs, event, self.position)

    @handles(CustomerErased)
    def erased(self, curs: Cursor[DictRow], event: CustomerErased) -> None:
        erase_rows(self.view, curs, erased_ids(event), event.timestamp)
        curs.execute(  # nobody is contacted about an erased person
            SQL("DELETE FROM {} WHERE customer_id = %s").format(self.view.table("campaigns")),
            (event.originator_id,),
        )
        change_customer(self.view, curs, event, self.position)

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
    def lead_event(self, curs: Cursor[DictRow], event: DomainEvent) -> None:
        insert_event(self.view, curs, "lead_events", event, self.position)

    @handles(LeadConverted)
    def lead_converted(self, curs: Cursor[DictRow], event: LeadConverted) -> None:
        columns = SQL(EVENT_COLUMNS)
        curs.execute(
            SQL(
                "INSERT INTO {timeline} ({columns}, customer_id, aggregate_type) "
                "SELECT {columns}, %s, 'lead' FROM {staged} WHERE aggregate_id = %s"
            ).format(
                timeline=self.view.table("timeline"),
                staged=self.view.table("lead_events"),
                columns=columns,
            ),
            (event.customer_id, event.originator_id),
        )
        curs.execute(
            SQL("DELETE FROM {} WHERE aggregate_id = %s").format(self.view.table("lead_events")),
            (event.originator_id,),
        )
        curs.execute(
            SQL(
                "INSERT INTO {} (lead_id, customer_id, opportunity_id, converted_at) "
                "VALUES (%s, %s, %s, %s)"
            ).format(self.view.table("leads")),
            (event.originator_id, event.customer_id, event.opportunity_id, event.timestamp),
        )
        record(self.view, curs, event, self.position, event.customer_id)

    @handles(LeadErased)
    def lead_erased(self, curs: Cursor[DictRow], event: LeadErased) -> None:
        erase_rows(self.view, curs, erased_ids(event), event.timestamp)
        record_lead_erasure(self.view, curs, event, self.position)

    # --- opportunities --------------------------------------------------------------------------

    @handles(OpportunityOpened)
    def opportunity_opened(self, curs: Cursor[DictRow], event: OpportunityOpened) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (opportunity_id, customer_id, title, stage, amount, currency) "
                "VALUES (%s, %s, %s, 'qualification', %s, %s)"
            ).format(self.view.table("opportunities")),
            (
                event.originator_id,
                event.customer_id,
                event.title,
                event.amount.amount,
                event.amount.currency,
            ),
        )
        record(self.view, curs, event, self.position, event.customer_id)

    @handles(OpportunityStageChanged, OpportunityReopened)
    def opportunity_moved(
        self, curs: Cursor[DictRow], event: OpportunityStageChanged | OpportunityReopened
    ) -> None:
        change_child(self.view, curs, event, self.position, "opportunities", stage=event.stage)

    @handles(OpportunityAmountChanged)
    def opportunity_amount(self, curs: Cursor[DictRow], event: OpportunityAmountChanged) -> None:
        amount, currency = event.amount.amount, event.amount.currency
        change_child(
            self.view, curs, event, self.position, "opportunities", amount=amount, currency=currency
        )

    @handles(OpportunityExpectedCloseChanged)
    def opportunity_close(
        self, curs: Cursor[DictRow], event: OpportunityExpectedCloseChanged
    ) -> None:
        change_child(self.view, curs, event, self.position, "opportunities")

    @handles(OpportunityWon)
    def opportunity_won(self, curs: Cursor[DictRow], event: OpportunityWon) -> None:
        amount, currency = event.amount.amount, event.amount.currency
        change_child(
            self.view,
            curs,
            event,
            self.position,
            "opportunities",
            stage="won",
            amount=amount,
            currency=currency,
        )

    @handles(OpportunityLost)
    def opportunity_lost(self, curs: Cursor[DictRow], event: OpportunityLost) -> None:
        change_child(self.view, curs, event, self.position, "opportunities", stage="lost")

    # --- tickets --------------------------------------------------------------------------------

    @handles(TicketOpened)
    def ticket_opened(self, curs: Cursor[DictRow], event: TicketOpened) -> None:
        curs.execute(
            SQL(
                "INSERT INTO {} (ticket_id, customer_id, subject, status) VALUES (%s, %s, %s, %s)"
            ).format(self.view.table("tickets")),
            (event.originator_id, event.customer_id, event.subject, TicketStatus.OPEN.value),
        )
        record(self.view, curs, event, self.position, event.customer_id)

    @handles(TicketPausedForCustomer, TicketResumed, TicketResolved, TicketClosed, TicketReopened)
    def ticket_status(self, curs: Cursor[DictRow], event: DomainEvent) -> None:
        change_child(
            self.view, curs, event, self.position, "tickets", status=STATUS_AFTER[type(event)].value
        )

    @handles(TicketRated)
    def ticket_rated(self, curs: Cursor[DictRow], event: TicketRated) -> None:
        change_child(self.view, curs, event, self.position, "tickets", csat=event.score)

    @handles(
        TicketAssigned,
        TicketFirstResponded,
        TicketEscalated,
        TicketPriorityChanged,
        TicketSlaAtRisk,
        TicketSlaBreached,
    )
    def ticket_worked(self, curs: Cursor[DictRow], event: DomainEvent) -> None:
        change_child(self.view, curs, event, self.position, "tickets")


STATUS_AFTER: dict[type[DomainEvent], TicketStatus] = {
    TicketPausedForCustomer: TicketStatus.WAITING_ON_CUSTOMER,
    TicketResumed: TicketStatus.OPEN,
    TicketResolved: TicketStatus.RESOLVED,
    TicketClosed: TicketStatus.CLOSED,
    TicketReopened: TicketStatus.OPEN,
}
