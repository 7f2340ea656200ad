"""Re-published events are byte for byte what the production service's own producer writes: its message is
``JSON.stringify`` of the envelope in Node.js, so the same payment is serialised by a real Node.js here and
compared with concertops's bytes (integral amounts stay integers: ``50000``, never ``50000.0``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from concertops.contract.envelope import step10_payment_completed

# The service's producer (kafka.producer.service.ts): eventId, eventType, eventTime, then the payload as the
# payment service passes it, the request's amount a JavaScript number.
_NODE = """
const [ms, amount] = process.argv.slice(1);
const at = new Date(Number(ms));
process.stdout.write(JSON.stringify({
  eventId: `evt_${at.getTime()}`,
  eventType: 'payment.completed',
  eventTime: at.toISOString(),
  payload: { paymentId: 'p-1', userId: 'u-1', reservationId: 'r-1', seatId: 's-1', amount: Number(amount) },
}));
"""


@pytest.mark.parametrize("amount", ["50000.00", "1234.50", "0.10", "99999999.99"])
def test_a_republished_payment_is_the_services_own_bytes(amount: str) -> None:
    node = shutil.which("node")
    assert node, "Node.js is needed to produce the service's own serialisation (apt-get install nodejs)"
    at = datetime(2026, 12, 2, 6, 0, 0, 123000, UTC)
    millis = int(at.timestamp() * 1000)
    theirs = subprocess.run(
        [node, "-e", _NODE, str(millis), amount], capture_output=True, check=True, timeout=30
    ).stdout
    row = {"key": "p-1", "user": "u-1", "reservation": "r-1", "seat": "s-1", "amount": Decimal(amount)}
    ours = step10_payment_completed("payment.completed", row, at)
    assert ours == theirs, (ours, theirs)
    integral = Decimal(amount) % 1 == 0
    assert isinstance(json.loads(ours)["payload"]["amount"], int) is integral
