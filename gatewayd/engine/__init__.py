"""One job on one hub: the meter type check and the optical read, the WAN and HAN probes, DCC
notices, the outcomes and their published form, the pure verdict, next actions, the result
document, progress steps, and a snapshot of the hub's state."""
