# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_alertstream_global_optspecs
    string join \n b/brokers= X/kafka= kafka-config= metrics= v/verbose q/quiet h/help V/version
end

function __fish_alertstream_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_alertstream_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_alertstream_using_subcommand
    set -l cmd (__fish_alertstream_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c alertstream -n "__fish_alertstream_needs_command" -s b -l brokers -d 'Kafka bootstrap brokers, comma-separated host:port list' -r
complete -c alertstream -n "__fish_alertstream_needs_command" -s X -l kafka -d 'Set any librdkafka property, as kcat does (repeatable)' -r
complete -c alertstream -n "__fish_alertstream_needs_command" -l kafka-config -d 'Read librdkafka properties from a file of key=value lines (\'#\' starts a comment)' -r -F
complete -c alertstream -n "__fish_alertstream_needs_command" -l metrics -d 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)' -r
complete -c alertstream -n "__fish_alertstream_needs_command" -s v -l verbose -d 'Log more: -v alertstream\'s debug lines and the libraries\' info, -vv debug, -vvv trace'
complete -c alertstream -n "__fish_alertstream_needs_command" -s q -l quiet -d 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q'
complete -c alertstream -n "__fish_alertstream_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c alertstream -n "__fish_alertstream_needs_command" -s V -l version -d 'Print version'
complete -c alertstream -n "__fish_alertstream_needs_command" -f -a "send" -d 'Send one visit of alerts, or a visit at every interval with --repeat'
complete -c alertstream -n "__fish_alertstream_needs_command" -f -a "print" -d 'Consume a stream and print each alert as one JSON object per line'
complete -c alertstream -n "__fish_alertstream_needs_command" -f -a "monitor" -d 'Watch a stream and the groups reading it: end-of-partition lines, rates, latency, group lag'
complete -c alertstream -n "__fish_alertstream_needs_command" -f -a "record" -d 'Archive a stream to Avro or Parquet files, each committed only once on disk'
complete -c alertstream -n "__fish_alertstream_needs_command" -f -a "filter" -d 'Route the alerts an expression selects to other topics, unchanged, exactly once'
complete -c alertstream -n "__fish_alertstream_needs_command" -f -a "view" -d 'Look at a stream in a web browser: rates, the newest alerts, cutouts, light curves'
complete -c alertstream -n "__fish_alertstream_needs_command" -f -a "simulate" -d 'Write simulated alerts to Avro files, one per visit, instead of Kafka'
complete -c alertstream -n "__fish_alertstream_needs_command" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c alertstream -n "__fish_alertstream_needs_command" -f -a "man" -d 'Print a manual page (roff) to stdout: alertstream(1), or a subcommand\'s'
complete -c alertstream -n "__fish_alertstream_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l alerts -d 'Avro object container file, or folder of them, to take alerts from (repeatable)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l format -d 'How each message frames its Avro data' -r -f -a "schemaless\t''
container\t''
confluent\t''
key-schema\t''"
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l key -d 'Key each message by this alert field (e.g. objectId; Rubin: diaSource.diaObjectId), so that one object\'s alerts stay on one partition, in order [default: no key]. Not with --format key-schema, whose key is the schema' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l schema-id -d 'Schema registry id written into each message with --format confluent (without --schema-registry)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l schema-registry -d 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio\'s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l registry-auth-file -d 'A file holding one line user:password for the registry\'s basic auth (kept out of the command line and process list)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l registry-ca -d 'PEM file of the CA that signed the registry\'s certificate [default: the system\'s roots]' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l subject -d 'Subject to register the writer schema under with --schema-registry [default: TOPIC-value, Confluent\'s topic-name strategy]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l pace -d 'Replay at the archive\'s own pace instead of in visits: "recorded" keeps the gaps between the broker timestamps alertstream record kept (its .kafka.jsonl sidecars, with each alert\'s key and headers); a field such as candidate.jd (ZTF) or diaSource.midpointMjdTai (Rubin) paces by that time instead (fields named *jd*/*mjd* in days, others in seconds)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l speed -d 'With --pace: play this many times faster (0.5 is half as fast)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l interval -d 'Seconds between visits with --repeat (fractions allowed, e.g. 0.5) [default: 39]; with --simulate also the grid its visits are numbered on. Refused without either: a single visit has no interval' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l max-repeats -d 'Number of visits with --repeat [default: 2215, 39 s each: about 24 hours]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l partitions -d 'Partitions of the topic when it has to be created [default: 1]; an existing topic keeps its own (a warning says so when they differ)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l replication-factor -d 'Replication factor of the topic when it has to be created [default: the cluster\'s default.replication.factor]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l flush-timeout -d 'Seconds Ctrl-C or SIGTERM waits for deliveries in flight before giving up on them (8 fits Docker\'s 10 s stop grace period)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l simulate -d 'Make the alerts instead of reading them: unique, evolving alerts of a simulated survey (recurring objects with growing histories, moving asteroids, bogus detections, real FITS cutouts). COUNT defaults to 10,000' -r -f -a "ztf\t'ZTF: the built-in ZTF 4.02 schema, or --schema for another version'
rubin\t'Rubin (LSST): needs Rubin\'s published schema with --schema'"
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l schema -d 'Schema to fill (.avsc file or folder): another ZTF version, or Rubin\'s published schema, e.g. lsst-alert-packet\'s schema/11/1 [ztf default: built-in 4.02]' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l seed -d 'Seed of the simulated sky: the same seed, --start and options give the same bytes [default: 1]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l start -d 'Time of the first visit (RFC 3339, -1h, @epoch-ms), on the grid of --interval [default: now; visits then follow the wall clock, so sharded senders on several hosts agree]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l fields -d 'Fields the visits cycle over: fewer fields, more recurrences [default: 4]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l objects -d 'Objects in the simulated sky [default: 20 x COUNT]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l mix -d 'Shares of the classes, e.g. periodic=0.4,transient=0.2,agn=0.2,solar-system=0.1,bogus=0.1; classes left out share the rest' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l bursts -d 'Send each visit in N bursts, detector by detector (Rubin\'s alert production emits a visit per detector) [default: 1]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l spread -d 'Seconds the bursts of a visit are spread over [default: 0]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l shard -d 'Make only detectors d with d mod N == I (ZTF: readout quadrants), with the ids an unsharded run gives them: N hosts with I = 0..N-1 make one stream' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l shard-slot -d '--shard counted from 1, as Docker Swarm numbers a service\'s replicas: ALERTSTREAM_SHARD_SLOT="{{.Task.Slot}}/3" in a stack file\'s environment' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -s b -l brokers -d 'Kafka bootstrap brokers, comma-separated host:port list' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -s X -l kafka -d 'Set any librdkafka property, as kcat does (repeatable)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l kafka-config -d 'Read librdkafka properties from a file of key=value lines (\'#\' starts a comment)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l metrics -d 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l no-stamps -d 'Send the cutout fields empty (null), without postage stamps'
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l encode-off -d 'Send alerts as JSON text instead of Avro binary'
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -l repeat -d 'Keep sending: one visit at every wall-clock multiple of --interval; with --pace, the whole archive again after its last alert'
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -s v -l verbose -d 'Log more: -v alertstream\'s debug lines and the libraries\' info, -vv debug, -vvv trace'
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -s q -l quiet -d 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q'
complete -c alertstream -n "__fish_alertstream_using_subcommand send" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -s g -l group -d 'Consumer group id [default: $HOSTNAME]. Consumers in one group share the stream; offsets are committed only after an alert is written out' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l max-messages -d 'Exit after this many messages' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l from -d 'Start at this time instead of where the command starts (a group\'s committed offsets, or the partitions\' ends): each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d, or now) or epoch milliseconds (@1795931367000)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l until -d 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l broker-timeout -d 'Exit with an error once every broker has been unreachable this long' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l format -l wire -d 'How messages frame their Avro data' -r -f -a "auto\t''
schemaless\t''
container\t''
confluent\t''
key-schema\t''"
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l max-alert-bytes -d 'The most one alert may take, in bytes of Avro binary (after decompression); larger ones are reported and skipped. Suffixes K, M, G' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l schema -d 'Reader schema: .avsc files or a folder of them [default: built-in]' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l schema-registry -d 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio\'s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l registry-auth-file -d 'A file holding one line user:password for the registry\'s basic auth (kept out of the command line and process list)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l registry-ca -d 'PEM file of the CA that signed the registry\'s certificate [default: the system\'s roots]' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l registry-cache -d 'Keep each schema fetched from the registry in this folder too, so a restart decodes without the registry (ids are never reused)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l schema-dir -d 'Writer schemas by id without a registry, laid out as Rubin publishes them (lsst-alert-packet\'s schema/ folder): id 703 is DIR/7/3/*.avsc' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l on-unknown-schema -d 'A Confluent-framed message whose schema id neither the registry nor --schema-dir knows: stop before it (exit 1, its offset not committed: an unknown id almost always means a wrong or reset registry), or skip it (counted in alertstream_decode_errors_total, reason unknown_schema)' -r -f -a "stop\t''
skip\t''"
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l stamp-dir -d 'Write each alert\'s cutouts into this folder (created if missing), named by their fileName' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l where -d 'Print only the alerts this CEL expression selects, e.g. \'candidate.magpsf < 17.0\' (see filter)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l dead-letter -d 'Copy every message that is not handled (refused by the decode gate, an unknown schema id under --on-unknown-schema skip, over --max-alert-bytes) unchanged to this topic, with the reason in headers alertstream-error, alertstream-error-detail and alertstream-source (topic/partition/offset); its offset is committed only once the copy is acknowledged' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -s b -l brokers -d 'Kafka bootstrap brokers, comma-separated host:port list' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -s X -l kafka -d 'Set any librdkafka property, as kcat does (repeatable)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l kafka-config -d 'Read librdkafka properties from a file of key=value lines (\'#\' starts a comment)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l metrics -d 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -s e -l exit-at-end -d 'Exit once every partition read has reached its end'
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l no-wait -d 'Fail at once if the topic does not exist, instead of waiting for it'
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l decode-off -d 'Print payloads as they are, without Avro decoding (for streams sent with --encode-off)'
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -l meta -d 'Add where each alert came from to its line, as a "_kafka" object: partition, offset, timestamp (ms), the visit and index send gave it, the framing (schemaless, container, confluent, key-schema), the schema id of a Confluent-framed message (else null), and, for a copy on a --dead-letter topic, "dead_letter": its error, detail and source; for a message a replay sent, "replay": its loop and offset_ms'
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -s v -l verbose -d 'Log more: -v alertstream\'s debug lines and the libraries\' info, -vv debug, -vvv trace'
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -s q -l quiet -d 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q'
complete -c alertstream -n "__fish_alertstream_using_subcommand print" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -s g -l group -d 'A consumer group to watch (repeatable): its lag per partition, from its committed offsets. Monitor never joins or commits for it' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -l max-messages -d 'Exit after this many messages' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -l from -d 'Start at this time instead of where the command starts (a group\'s committed offsets, or the partitions\' ends): each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d, or now) or epoch milliseconds (@1795931367000)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -l until -d 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -l broker-timeout -d 'Exit with an error once every broker has been unreachable this long' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -l every -d 'Seconds between status lines (rate, lag, latency); 0 turns them off' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -s b -l brokers -d 'Kafka bootstrap brokers, comma-separated host:port list' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -s X -l kafka -d 'Set any librdkafka property, as kcat does (repeatable)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -l kafka-config -d 'Read librdkafka properties from a file of key=value lines (\'#\' starts a comment)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -l metrics -d 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -s e -l exit-at-end -d 'Exit once every partition read has reached its end'
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -l no-wait -d 'Fail at once if the topic does not exist, instead of waiting for it'
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -s v -l verbose -d 'Log more: -v alertstream\'s debug lines and the libraries\' info, -vv debug, -vvv trace'
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -s q -l quiet -d 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q'
complete -c alertstream -n "__fish_alertstream_using_subcommand monitor" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l out -d 'Folder to write the archive into (created if missing). Nothing is written outside it' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -s g -l group -d 'Consumer group id [default: $HOSTNAME]. Offsets are committed only for alerts in files already renamed into place' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l max-messages -d 'Exit after this many messages' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l from -d 'Start at this time instead of where the command starts (a group\'s committed offsets, or the partitions\' ends): each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d, or now) or epoch milliseconds (@1795931367000)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l until -d 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l broker-timeout -d 'Exit with an error once every broker has been unreachable this long' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l format -d 'Archive format: avro keeps each alert\'s bytes as they arrived, with its writer schema; parquet derives columns from the Avro schema (how messages frame their Avro is --wire)' -r -f -a "avro\t''
parquet\t''"
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l codec -d 'Compression of the archive\'s blocks (Avro) or pages (Parquet)' -r -f -a "null\t''
deflate\t''
snappy\t''
zstandard\t''"
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l roll-alerts -d 'Start a new file after this many alerts' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l roll-seconds -d 'Start a new file after this many seconds' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l roll-bytes -d 'Start a new file past this size (suffixes K, M, G)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l where -d 'Archive only the alerts this CEL expression selects (see filter)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l wire -d 'How messages frame their Avro data (as print --format)' -r -f -a "auto\t''
schemaless\t''
container\t''
confluent\t''
key-schema\t''"
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l schema -d 'Reader schema for bare and Confluent-framed messages [default: built-in]; with it, containers are resolved to it too. The fields --where may name, and the columns of Parquet archives, follow it' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l max-alert-bytes -d 'The most one alert may take, in bytes of Avro binary' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l schema-registry -d 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio\'s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l registry-auth-file -d 'A file holding one line user:password for the registry\'s basic auth (kept out of the command line and process list)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l registry-ca -d 'PEM file of the CA that signed the registry\'s certificate [default: the system\'s roots]' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l registry-cache -d 'Keep each schema fetched from the registry in this folder too, so a restart decodes without the registry (ids are never reused)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l schema-dir -d 'Writer schemas by id without a registry, laid out as Rubin publishes them (lsst-alert-packet\'s schema/ folder): id 703 is DIR/7/3/*.avsc' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l on-unknown-schema -d 'A Confluent-framed message whose schema id neither the registry nor --schema-dir knows: stop before it (exit 1, its offset not committed: an unknown id almost always means a wrong or reset registry), or skip it (counted in alertstream_decode_errors_total, reason unknown_schema)' -r -f -a "stop\t''
skip\t''"
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l dead-letter -d 'Copy every message that is not handled (refused by the decode gate, an unknown schema id under --on-unknown-schema skip, over --max-alert-bytes) unchanged to this topic, with the reason in headers alertstream-error, alertstream-error-detail and alertstream-source (topic/partition/offset); its offset is committed only once the copy is acknowledged' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -s b -l brokers -d 'Kafka bootstrap brokers, comma-separated host:port list' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -s X -l kafka -d 'Set any librdkafka property, as kcat does (repeatable)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l kafka-config -d 'Read librdkafka properties from a file of key=value lines (\'#\' starts a comment)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l metrics -d 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -s e -l exit-at-end -d 'Exit once every partition read has reached its end'
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l no-wait -d 'Fail at once if the topic does not exist, instead of waiting for it'
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -l no-stamps -d 'Leave the cutouts out (Parquet only: Avro archives keep alerts whole)'
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -s v -l verbose -d 'Log more: -v alertstream\'s debug lines and the libraries\' info, -vv debug, -vvv trace'
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -s q -l quiet -d 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q'
complete -c alertstream -n "__fish_alertstream_using_subcommand record" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l where -d 'A CEL expression over the alert as print shows it, e.g. \'candidate.rb >= 0.65 && abs(candidate.magdiff) <= 0.1\'. Each --where pairs with the --to that follows it (repeatable: several routes)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l to -d 'Topic the alerts its --where selects go to (created if missing)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -s g -l group -d 'Consumer group id [default: $HOSTNAME]. Input offsets are committed in the same transaction as the alerts they selected (not with --from or --until: a window is read outside the group and commits no offsets)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l max-messages -d 'Exit after this many messages' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l from -d 'Start at this time instead of where the command starts (a group\'s committed offsets, or the partitions\' ends): each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d, or now) or epoch milliseconds (@1795931367000)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l until -d 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l broker-timeout -d 'Exit with an error once every broker has been unreachable this long' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l transactional-id -d 'The producer\'s transactional.id [default: alertstream-filter-GROUP-TOPIC-HOST; with --from or --until, alertstream-filter-window-GROUP-TOPIC-HOST]. A restart with the same id fences the old instance\'s open transaction' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l limit-per-visit -d 'Each route forwards at most N messages per visit, the first N it reads. The visit is what --visit-key names, or else the alertstream-visit header send writes; messages with neither are not capped (said once). Counts live in this process: a restart mid-visit counts that visit afresh' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l visit-key -d 'What names an alert\'s visit for --limit-per-visit, e.g. \'diaSource.visit\' (Rubin) or \'candidate.jd\' (ZTF: one exposure) [default: the alertstream-visit header]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l dedupe-key -d 'Each route forwards an object once per --dedupe-window; EXPR names the object, e.g. \'objectId\' (ZTF) or \'diaObject.diaObjectId\' (Rubin). An alert whose key is null is never a duplicate. What was routed is remembered in this process: after a restart an object may go once more' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l dedupe-window -d 'How long after an object is routed it is not routed again, in the messages\' own time (their timestamps): 90s, 30m, 12h, 2d' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l commit-interval -d 'Seconds between transaction commits: what a read_committed reader waits for at most, besides the transport' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l wire -d 'How messages frame their Avro data (as print --format)' -r -f -a "auto\t''
schemaless\t''
container\t''
confluent\t''
key-schema\t''"
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l schema -d 'Reader schema for bare and Confluent-framed messages [default: built-in]; with it, containers are resolved to it too. The fields --where may name, and the columns of Parquet archives, follow it' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l max-alert-bytes -d 'The most one alert may take, in bytes of Avro binary' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l schema-registry -d 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio\'s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l registry-auth-file -d 'A file holding one line user:password for the registry\'s basic auth (kept out of the command line and process list)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l registry-ca -d 'PEM file of the CA that signed the registry\'s certificate [default: the system\'s roots]' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l registry-cache -d 'Keep each schema fetched from the registry in this folder too, so a restart decodes without the registry (ids are never reused)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l schema-dir -d 'Writer schemas by id without a registry, laid out as Rubin publishes them (lsst-alert-packet\'s schema/ folder): id 703 is DIR/7/3/*.avsc' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l on-unknown-schema -d 'A Confluent-framed message whose schema id neither the registry nor --schema-dir knows: stop before it (exit 1, its offset not committed: an unknown id almost always means a wrong or reset registry), or skip it (counted in alertstream_decode_errors_total, reason unknown_schema)' -r -f -a "stop\t''
skip\t''"
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l dead-letter -d 'Copy every message that is not handled (refused by the decode gate, an unknown schema id under --on-unknown-schema skip, over --max-alert-bytes) unchanged to this topic, with the reason in headers alertstream-error, alertstream-error-detail and alertstream-source (topic/partition/offset); its offset is committed only once the copy is acknowledged' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -s b -l brokers -d 'Kafka bootstrap brokers, comma-separated host:port list' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -s X -l kafka -d 'Set any librdkafka property, as kcat does (repeatable)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l kafka-config -d 'Read librdkafka properties from a file of key=value lines (\'#\' starts a comment)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l metrics -d 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -s e -l exit-at-end -d 'Exit once every partition read has reached its end'
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -l no-wait -d 'Fail at once if the topic does not exist, instead of waiting for it'
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -s v -l verbose -d 'Log more: -v alertstream\'s debug lines and the libraries\' info, -vv debug, -vvv trace'
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -s q -l quiet -d 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q'
complete -c alertstream -n "__fish_alertstream_using_subcommand filter" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l archive -d 'Show a folder that `record` wrote (Avro or Parquet) instead of topics: its newest --keep alerts, with the topic, partition and offset each came from (filter with e.g. objectId == "ZTF18abc"). The folder is shown as it is: --group, -e, --max-messages, --no-wait, --from and --until are for topics' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l listen -d 'Address the page is served on. Anything but a loopback address is reachable by others: give --token then' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l token -d 'Require this token on every request: `Authorization: Bearer TOKEN`, or `?token=TOKEN` in the page\'s address (the page passes it on)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l where -d 'Keep only the alerts this CEL expression selects (as print --where); the page\'s filter box narrows further' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l keep -d 'Keep the newest N alerts in memory' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l keep-bytes -d '... and at most this many bytes of messages (the oldest go first). Suffixes K, M, G' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -s g -l group -d 'A consumer group whose lag the page shows (repeatable); view never joins or commits for it' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l max-messages -d 'Exit after this many messages' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l from -d 'Start at this time instead of where the command starts (a group\'s committed offsets, or the partitions\' ends): each partition from its first message with a broker timestamp at or after TIME. TIME is RFC 3339 (2026-11-29T05:50:01.123Z), relative to now (-1h, -30m, -2d, or now) or epoch milliseconds (@1795931367000)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l until -d 'Stop each partition at its first message at or after TIME (not included); exit once every partition has stopped. Forms as --from' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l broker-timeout -d 'Exit with an error once every broker has been unreachable this long' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l format -l wire -d 'How messages frame their Avro data' -r -f -a "auto\t''
schemaless\t''
container\t''
confluent\t''
key-schema\t''"
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l max-alert-bytes -d 'The most one alert may take, in bytes of Avro binary (after decompression); larger ones are reported and skipped. Suffixes K, M, G' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l schema -d 'Reader schema: .avsc files or a folder of them [default: built-in]' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l schema-registry -d 'A Confluent-compatible schema registry, e.g. http://127.0.0.1:8081 or Apicurio\'s http://HOST:8080/apis/ccompat/v7. Consumers decode each Confluent-framed message with the writer schema its id names; send --format confluent registers its schema there. Basic auth may come in the URL (https://user:password@host) or --registry-auth-file' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l registry-auth-file -d 'A file holding one line user:password for the registry\'s basic auth (kept out of the command line and process list)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l registry-ca -d 'PEM file of the CA that signed the registry\'s certificate [default: the system\'s roots]' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l registry-cache -d 'Keep each schema fetched from the registry in this folder too, so a restart decodes without the registry (ids are never reused)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l schema-dir -d 'Writer schemas by id without a registry, laid out as Rubin publishes them (lsst-alert-packet\'s schema/ folder): id 703 is DIR/7/3/*.avsc' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l on-unknown-schema -d 'A Confluent-framed message whose schema id neither the registry nor --schema-dir knows: stop before it (exit 1, its offset not committed: an unknown id almost always means a wrong or reset registry), or skip it (counted in alertstream_decode_errors_total, reason unknown_schema)' -r -f -a "stop\t''
skip\t''"
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -s b -l brokers -d 'Kafka bootstrap brokers, comma-separated host:port list' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -s X -l kafka -d 'Set any librdkafka property, as kcat does (repeatable)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l kafka-config -d 'Read librdkafka properties from a file of key=value lines (\'#\' starts a comment)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l metrics -d 'Serve Prometheus metrics on this address while the command runs: GET /metrics, and GET /healthz (200 while the brokers answer)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -s e -l exit-at-end -d 'Exit once every partition read has reached its end'
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -l no-wait -d 'Fail at once if the topic does not exist, instead of waiting for it'
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -s v -l verbose -d 'Log more: -v alertstream\'s debug lines and the libraries\' info, -vv debug, -vvv trace'
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -s q -l quiet -d 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q'
complete -c alertstream -n "__fish_alertstream_using_subcommand view" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -l out -d 'Folder to write the visits to, one Avro object container file each (visit-N.avro)' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -l visits -d 'Number of visits' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -l interval -d 'Seconds between visits (the simulated survey\'s cadence)' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -l schema -d 'Schema to fill (.avsc file or folder): another ZTF version, or Rubin\'s published schema, e.g. lsst-alert-packet\'s schema/11/1 [ztf default: built-in 4.02]' -r -F
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -l seed -d 'Seed of the simulated sky: the same seed, --start and options give the same bytes [default: 1]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -l start -d 'Time of the first visit (RFC 3339, -1h, @epoch-ms), on the grid of --interval [default: now; visits then follow the wall clock, so sharded senders on several hosts agree]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -l fields -d 'Fields the visits cycle over: fewer fields, more recurrences [default: 4]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -l objects -d 'Objects in the simulated sky [default: 20 x COUNT]' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -l mix -d 'Shares of the classes, e.g. periodic=0.4,transient=0.2,agn=0.2,solar-system=0.1,bogus=0.1; classes left out share the rest' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -l shard -d 'Make only detectors d with d mod N == I (ZTF: readout quadrants), with the ids an unsharded run gives them: N hosts with I = 0..N-1 make one stream' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -l shard-slot -d '--shard counted from 1, as Docker Swarm numbers a service\'s replicas: ALERTSTREAM_SHARD_SLOT="{{.Task.Slot}}/3" in a stack file\'s environment' -r
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -l no-stamps -d 'Leave the cutout fields empty (null), without postage stamps'
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -s v -l verbose -d 'Log more: -v alertstream\'s debug lines and the libraries\' info, -vv debug, -vvv trace'
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -s q -l quiet -d 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q'
complete -c alertstream -n "__fish_alertstream_using_subcommand simulate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c alertstream -n "__fish_alertstream_using_subcommand completions" -s v -l verbose -d 'Log more: -v alertstream\'s debug lines and the libraries\' info, -vv debug, -vvv trace'
complete -c alertstream -n "__fish_alertstream_using_subcommand completions" -s q -l quiet -d 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q'
complete -c alertstream -n "__fish_alertstream_using_subcommand completions" -s h -l help -d 'Print help'
complete -c alertstream -n "__fish_alertstream_using_subcommand man" -s v -l verbose -d 'Log more: -v alertstream\'s debug lines and the libraries\' info, -vv debug, -vvv trace'
complete -c alertstream -n "__fish_alertstream_using_subcommand man" -s q -l quiet -d 'Log only errors. RUST_LOG, when set and valid, takes precedence over -v and -q'
complete -c alertstream -n "__fish_alertstream_using_subcommand man" -s h -l help -d 'Print help'
complete -c alertstream -n "__fish_alertstream_using_subcommand help; and not __fish_seen_subcommand_from send print monitor record filter view simulate completions man help" -f -a "send" -d 'Send one visit of alerts, or a visit at every interval with --repeat'
complete -c alertstream -n "__fish_alertstream_using_subcommand help; and not __fish_seen_subcommand_from send print monitor record filter view simulate completions man help" -f -a "print" -d 'Consume a stream and print each alert as one JSON object per line'
complete -c alertstream -n "__fish_alertstream_using_subcommand help; and not __fish_seen_subcommand_from send print monitor record filter view simulate completions man help" -f -a "monitor" -d 'Watch a stream and the groups reading it: end-of-partition lines, rates, latency, group lag'
complete -c alertstream -n "__fish_alertstream_using_subcommand help; and not __fish_seen_subcommand_from send print monitor record filter view simulate completions man help" -f -a "record" -d 'Archive a stream to Avro or Parquet files, each committed only once on disk'
complete -c alertstream -n "__fish_alertstream_using_subcommand help; and not __fish_seen_subcommand_from send print monitor record filter view simulate completions man help" -f -a "filter" -d 'Route the alerts an expression selects to other topics, unchanged, exactly once'
complete -c alertstream -n "__fish_alertstream_using_subcommand help; and not __fish_seen_subcommand_from send print monitor record filter view simulate completions man help" -f -a "view" -d 'Look at a stream in a web browser: rates, the newest alerts, cutouts, light curves'
complete -c alertstream -n "__fish_alertstream_using_subcommand help; and not __fish_seen_subcommand_from send print monitor record filter view simulate completions man help" -f -a "simulate" -d 'Write simulated alerts to Avro files, one per visit, instead of Kafka'
complete -c alertstream -n "__fish_alertstream_using_subcommand help; and not __fish_seen_subcommand_from send print monitor record filter view simulate completions man help" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c alertstream -n "__fish_alertstream_using_subcommand help; and not __fish_seen_subcommand_from send print monitor record filter view simulate completions man help" -f -a "man" -d 'Print a manual page (roff) to stdout: alertstream(1), or a subcommand\'s'
complete -c alertstream -n "__fish_alertstream_using_subcommand help; and not __fish_seen_subcommand_from send print monitor record filter view simulate completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
