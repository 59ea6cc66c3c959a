"""The live per-frame intake: `intake` takes the engine's reports for one camera frame into the ledger (posting,
auto-verification, the frame pool), and `report_queue` is its durable journal of what is not yet written, so a
database outage or a killed service loses nothing. The service (`streetorder serve`) drives it frame by frame."""
