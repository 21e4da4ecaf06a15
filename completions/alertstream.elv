
use builtin;
use str;

set edit:completion:arg-completer[alertstream] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'alertstream'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'alertstream'= {
            cand -b 'Kafka bootstrap brokers, comma-separated host:port list'
            cand --brokers 'Kafka bootstrap brokers, comma-separated host:port list'
            cand -X 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka-config 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)'
            cand --metrics 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)'
            cand -v 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand --verbose 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand -q 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand --quiet 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand send 'Send one visit of alerts, or a visit at every interval with --repeat'
            cand print 'Consume a stream and print each alert as one JSON object per line'
            cand monitor 'Watch a stream and the groups reading it: end-of-partition lines, rates, latency, group lag'
            cand record 'Archive a stream to Avro or Parquet files, each committed only once on disk'
            cand filter 'Route the alerts an expression selects to other topics, unchanged, exactly once'
            cand completions 'Print a shell completion script to stdout'
            cand man 'Print the manual page (roff) to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'alertstream;send'= {
            cand --alerts 'Avro object container file, or folder of them, to take alerts from (repeatable)'
            cand --format 'How each message frames its Avro data'
            cand --schema-id 'Schema registry id written into each message with --format confluent (without --schema-registry)'
            cand --schema-registry 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio''s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file'
            cand --registry-auth-file 'A file holding one line user:password for the registry''s basic auth (kept out of the command line and process list)'
            cand --registry-ca 'PEM file of the CA that signed the registry''s certificate [default: the system''s roots]'
            cand --subject 'Subject to register the writer schema under with --schema-registry [default: TOPIC-value, Confluent''s topic-name strategy]'
            cand --pace 'Replay at the archive''s own pace instead of in visits: "recorded" keeps the gaps between the broker timestamps alertstream record kept (its .kafka.jsonl sidecars, with each alert''s key and headers); a field such as candidate.jd (ZTF) or diaSource.midpointMjdTai (Rubin) paces by that time instead (fields named *jd*/*mjd* in days, others in seconds)'
            cand --speed 'With --pace: play this many times faster (0.5 is half as fast)'
            cand --interval 'Seconds between visits with --repeat (fractions allowed, e.g. 0.5)'
            cand --max-repeats 'Number of visits with --repeat (2215 visits of 39 s is about 24 hours)'
            cand --partitions 'Partitions of the topic when it has to be created'
            cand --replication-factor 'Replication factor of the topic when it has to be created [default: the cluster''s default.replication.factor]'
            cand --flush-timeout 'Seconds Ctrl-C or SIGTERM waits for deliveries in flight before giving up on them (8 fits Docker''s 10 s stop grace period)'
            cand -b 'Kafka bootstrap brokers, comma-separated host:port list'
            cand --brokers 'Kafka bootstrap brokers, comma-separated host:port list'
            cand -X 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka-config 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)'
            cand --metrics 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)'
            cand --no-stamps 'Send the cutout fields empty (null), without postage stamps'
            cand --encode-off 'Send alerts as JSON text instead of Avro binary'
            cand --repeat 'Keep sending: one visit at every wall-clock multiple of --interval; with --pace, the whole archive again after its last alert'
            cand -v 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand --verbose 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand -q 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand --quiet 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'alertstream;print'= {
            cand -g 'Consumer group id [default: $HOSTNAME]. Consumers in one group share the stream; offsets are committed only after an alert is written out'
            cand --group 'Consumer group id [default: $HOSTNAME]. Consumers in one group share the stream; offsets are committed only after an alert is written out'
            cand --max-messages 'Exit after this many messages'
            cand --from 'Start at this time instead of a group''s committed offsets: each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d) or epoch milliseconds (@1795931367000)'
            cand --until 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from'
            cand --broker-timeout 'Exit with an error once every broker has been unreachable this long'
            cand --format 'How messages frame their Avro data'
            cand --wire 'How messages frame their Avro data'
            cand --max-alert-bytes 'The most one alert may take, in bytes of Avro binary (after decompression); larger ones are reported and skipped. Suffixes K, M, G'
            cand --stamp-dir 'Write each alert''s cutouts into this folder (created if missing), named by their fileName'
            cand --where 'Print only the alerts this CEL expression selects, e.g. ''candidate.magpsf < 17.0'' (see filter)'
            cand --schema 'Reader schema: .avsc files or a folder of them [default: built-in]'
            cand --schema-registry 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio''s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file'
            cand --registry-auth-file 'A file holding one line user:password for the registry''s basic auth (kept out of the command line and process list)'
            cand --registry-ca 'PEM file of the CA that signed the registry''s certificate [default: the system''s roots]'
            cand --registry-cache 'Keep each schema fetched from the registry in this folder too, so a restart decodes without the registry (ids are never reused)'
            cand --schema-dir 'Writer schemas by id without a registry, laid out as Rubin publishes them (lsst-alert-packet''s schema/ folder): id 703 is DIR/7/3/*.avsc'
            cand -b 'Kafka bootstrap brokers, comma-separated host:port list'
            cand --brokers 'Kafka bootstrap brokers, comma-separated host:port list'
            cand -X 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka-config 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)'
            cand --metrics 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)'
            cand -e 'Exit once every assigned partition has reached its end'
            cand --exit-at-end 'Exit once every assigned partition has reached its end'
            cand --no-wait 'Fail at once if the topic does not exist, instead of waiting for it'
            cand --decode-off 'Print payloads as they are, without Avro decoding (for streams sent with --encode-off)'
            cand --meta 'Add where each alert came from to its line, as a "_kafka" object: partition, offset, timestamp (ms), the visit and index send gave it, and the schema id of a Confluent-framed message (else null)'
            cand -v 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand --verbose 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand -q 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand --quiet 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'alertstream;monitor'= {
            cand -g 'A consumer group to watch (repeatable): its lag per partition, from its committed offsets. Monitor never joins or commits for it'
            cand --group 'A consumer group to watch (repeatable): its lag per partition, from its committed offsets. Monitor never joins or commits for it'
            cand --max-messages 'Exit after this many messages'
            cand --from 'Start at this time instead of a group''s committed offsets: each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d) or epoch milliseconds (@1795931367000)'
            cand --until 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from'
            cand --broker-timeout 'Exit with an error once every broker has been unreachable this long'
            cand --every 'Seconds between status lines (rate, lag, latency); 0 turns them off'
            cand -b 'Kafka bootstrap brokers, comma-separated host:port list'
            cand --brokers 'Kafka bootstrap brokers, comma-separated host:port list'
            cand -X 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka-config 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)'
            cand --metrics 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)'
            cand -e 'Exit once every assigned partition has reached its end'
            cand --exit-at-end 'Exit once every assigned partition has reached its end'
            cand --no-wait 'Fail at once if the topic does not exist, instead of waiting for it'
            cand -v 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand --verbose 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand -q 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand --quiet 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'alertstream;record'= {
            cand --out 'Folder to write the archive into (created if missing). Nothing is written outside it'
            cand -g 'Consumer group id [default: $HOSTNAME]. Offsets are committed only for alerts in files already renamed into place'
            cand --group 'Consumer group id [default: $HOSTNAME]. Offsets are committed only for alerts in files already renamed into place'
            cand --max-messages 'Exit after this many messages'
            cand --from 'Start at this time instead of a group''s committed offsets: each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d) or epoch milliseconds (@1795931367000)'
            cand --until 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from'
            cand --broker-timeout 'Exit with an error once every broker has been unreachable this long'
            cand --format 'Archive format: avro keeps each alert''s bytes as they arrived, with its writer schema; parquet derives columns from the Avro schema'
            cand --codec 'Compression of the archive''s blocks (Avro) or pages (Parquet)'
            cand --roll-alerts 'Start a new file after this many alerts'
            cand --roll-seconds 'Start a new file after this many seconds'
            cand --roll-bytes 'Start a new file past this size (suffixes K, M, G)'
            cand --where 'Archive only the alerts this CEL expression selects (see filter)'
            cand --wire 'How messages frame their Avro data (as print --format)'
            cand --schema 'Reader schema for bare and Confluent-framed messages [default: built-in]; with it, containers are resolved to it too. The fields --where may name, and the columns of Parquet archives, follow it'
            cand --max-alert-bytes 'The most one alert may take, in bytes of Avro binary'
            cand --schema-registry 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio''s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file'
            cand --registry-auth-file 'A file holding one line user:password for the registry''s basic auth (kept out of the command line and process list)'
            cand --registry-ca 'PEM file of the CA that signed the registry''s certificate [default: the system''s roots]'
            cand --registry-cache 'Keep each schema fetched from the registry in this folder too, so a restart decodes without the registry (ids are never reused)'
            cand --schema-dir 'Writer schemas by id without a registry, laid out as Rubin publishes them (lsst-alert-packet''s schema/ folder): id 703 is DIR/7/3/*.avsc'
            cand -b 'Kafka bootstrap brokers, comma-separated host:port list'
            cand --brokers 'Kafka bootstrap brokers, comma-separated host:port list'
            cand -X 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka-config 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)'
            cand --metrics 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)'
            cand -e 'Exit once every assigned partition has reached its end'
            cand --exit-at-end 'Exit once every assigned partition has reached its end'
            cand --no-wait 'Fail at once if the topic does not exist, instead of waiting for it'
            cand --no-stamps 'Leave the cutouts out (Parquet only: Avro archives keep alerts whole)'
            cand -v 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand --verbose 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand -q 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand --quiet 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'alertstream;filter'= {
            cand --where 'A CEL expression over the alert as print shows it, e.g. ''candidate.rb >= 0.65 && abs(candidate.magdiff) <= 0.1''. Each --where pairs with the --to that follows it (repeatable: several routes)'
            cand --to 'Topic the alerts its --where selects go to (created if missing)'
            cand -g 'Consumer group id [default: $HOSTNAME]. Input offsets are committed in the same transaction as the alerts they selected'
            cand --group 'Consumer group id [default: $HOSTNAME]. Input offsets are committed in the same transaction as the alerts they selected'
            cand --max-messages 'Exit after this many messages'
            cand --from 'Start at this time instead of a group''s committed offsets: each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d) or epoch milliseconds (@1795931367000)'
            cand --until 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from'
            cand --broker-timeout 'Exit with an error once every broker has been unreachable this long'
            cand --transactional-id 'The producer''s transactional.id [default: alertstream-filter-GROUP-TOPIC-HOST]. A restart with the same id fences the old instance''s open transaction'
            cand --limit-per-visit 'Each route forwards at most N messages per visit, the first N it reads. The visit is what --visit-key names, or else the alertstream-visit header send writes; messages with neither are not capped (said once). Counts live in this process: a restart mid-visit counts that visit afresh'
            cand --visit-key 'What names an alert''s visit for --limit-per-visit, e.g. ''diaSource.visit'' (Rubin) or ''candidate.jd'' (ZTF: one exposure) [default: the alertstream-visit header]'
            cand --dedupe-key 'Each route forwards an object once per --dedupe-window; EXPR names the object, e.g. ''objectId'' (ZTF) or ''diaObject.diaObjectId'' (Rubin). An alert whose key is null is never a duplicate. What was routed is remembered in this process: after a restart an object may go once more'
            cand --dedupe-window 'How long after an object is routed it is not routed again, in the messages'' own time (their timestamps): 90s, 30m, 12h, 2d'
            cand --commit-interval 'Seconds between transaction commits: what a read_committed reader waits for at most, besides the transport'
            cand --wire 'How messages frame their Avro data (as print --format)'
            cand --schema 'Reader schema for bare and Confluent-framed messages [default: built-in]; with it, containers are resolved to it too. The fields --where may name, and the columns of Parquet archives, follow it'
            cand --max-alert-bytes 'The most one alert may take, in bytes of Avro binary'
            cand --schema-registry 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio''s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file'
            cand --registry-auth-file 'A file holding one line user:password for the registry''s basic auth (kept out of the command line and process list)'
            cand --registry-ca 'PEM file of the CA that signed the registry''s certificate [default: the system''s roots]'
            cand --registry-cache 'Keep each schema fetched from the registry in this folder too, so a restart decodes without the registry (ids are never reused)'
            cand --schema-dir 'Writer schemas by id without a registry, laid out as Rubin publishes them (lsst-alert-packet''s schema/ folder): id 703 is DIR/7/3/*.avsc'
            cand -b 'Kafka bootstrap brokers, comma-separated host:port list'
            cand --brokers 'Kafka bootstrap brokers, comma-separated host:port list'
            cand -X 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka-config 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)'
            cand --metrics 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)'
            cand -e 'Exit once every assigned partition has reached its end'
            cand --exit-at-end 'Exit once every assigned partition has reached its end'
            cand --no-wait 'Fail at once if the topic does not exist, instead of waiting for it'
            cand -v 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand --verbose 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand -q 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand --quiet 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'alertstream;completions'= {
            cand -b 'Kafka bootstrap brokers, comma-separated host:port list'
            cand --brokers 'Kafka bootstrap brokers, comma-separated host:port list'
            cand -X 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka-config 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)'
            cand --metrics 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)'
            cand -v 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand --verbose 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand -q 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand --quiet 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'alertstream;man'= {
            cand -b 'Kafka bootstrap brokers, comma-separated host:port list'
            cand --brokers 'Kafka bootstrap brokers, comma-separated host:port list'
            cand -X 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka 'Set any librdkafka property, as kcat does (repeatable)'
            cand --kafka-config 'Read librdkafka properties from a file of key=value lines (''#'' starts a comment)'
            cand --metrics 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)'
            cand -v 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand --verbose 'Log more (repeat for more detail: -v info, -vv debug, -vvv trace)'
            cand -q 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand --quiet 'Log only errors. RUST_LOG, when set, takes precedence over -v and -q'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'alertstream;help'= {
            cand send 'Send one visit of alerts, or a visit at every interval with --repeat'
            cand print 'Consume a stream and print each alert as one JSON object per line'
            cand monitor 'Watch a stream and the groups reading it: end-of-partition lines, rates, latency, group lag'
            cand record 'Archive a stream to Avro or Parquet files, each committed only once on disk'
            cand filter 'Route the alerts an expression selects to other topics, unchanged, exactly once'
            cand completions 'Print a shell completion script to stdout'
            cand man 'Print the manual page (roff) to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'alertstream;help;send'= {
        }
        &'alertstream;help;print'= {
        }
        &'alertstream;help;monitor'= {
        }
        &'alertstream;help;record'= {
        }
        &'alertstream;help;filter'= {
        }
        &'alertstream;help;completions'= {
        }
        &'alertstream;help;man'= {
        }
        &'alertstream;help;help'= {
        }
    ]
    $completions[$command]
}
