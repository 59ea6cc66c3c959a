"""Frames in, the first stage of the flow: video files decoded as sparse ticks (`decode`), stills and patrol
photos (`images`, `frames`), each stamped with the time it was taken; the change gate that spares the detector an
unchanged street (`gate`); and one camera file through decoding, the gate and the detector (`sampling`, with
`prefetch` overlapping the work in a thread)."""
