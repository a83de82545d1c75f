-- What happened in a run, in order: `seq` counts from 1 without gaps per
-- run, written in the same transaction as the change it reports, so a
-- client that resumes after event N (`Last-Event-ID`) misses nothing and
-- sees nothing twice, on any replica. `data` is the event as JSON.
CREATE TABLE run_events (
    run_id     TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
