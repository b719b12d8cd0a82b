"""The CRM application service: one method per use case, over the event store."""

from domain.application.commands import CommandResult
from domain.application.config import CRMConfig
from domain.application.crm import CRM

__all__ = ["CRM", "CRMConfig", "CommandResult"]
