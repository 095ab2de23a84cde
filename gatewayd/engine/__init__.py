"""One job on one hub: the meter type check, the WAN and HAN probes, their outcomes, the pure
verdict, next actions and the result document."""
