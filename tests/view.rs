//! `alertstream view` in a real browser: Debian's chromium, driven through
//! chromedriver's WebDriver protocol, against a real broker. Also the page's
//! HTTP API, hostile cutouts and hostile alert text, and the token.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use serde_json::{json, Value as Json};

use common::{ok, ztf_fixtures, Running};

/// An HTTP agent that reports every status instead of failing on 4xx/5xx.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// (status, headers as "name: value" lines, body)
fn get(url: &str) -> (u16, String, Vec<u8>) {
    let mut response = agent().get(url).call().expect(url);
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
        .collect::<Vec<_>>()
        .join("\n");
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .unwrap();
    (response.status().as_u16(), headers, body)
}

fn get_json(url: &str) -> Json {
    let (status, _, body) = get(url);
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

/// `view` running, and the address it serves.
struct View {
    /// `None` once stopped; a test that fails first kills it on drop.
    running: Option<Running>,
    base: String,
    stderr: Vec<String>,
}

impl View {
    fn start(args: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", args)
    }

    fn start_on(listen: &str, args: &[&str]) -> Self {
        let mut all = vec!["view", "--listen", listen];
        all.extend_from_slice(args);
        let running = common::spawn(&all);
        let mut stderr = Vec::new();
        running.wait_stderr(
            "the view's address",
            |l| l.contains("view on http://"),
            &mut stderr,
        );
        let line = stderr.last().unwrap();
        let start = line.find("http://").unwrap();
        let base = line[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        Self {
            running: Some(running),
            base,
            stderr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits until the API lists `count` alerts (the consumer has read them).
    fn wait_for_alerts(&self, count: usize) -> Vec<Json> {
        let deadline = Instant::now() + common::RUN_LIMIT;
        loop {
            let rows = get_json(&self.url("/api/alerts"))["alerts"]
                .as_array()
                .unwrap()
                .clone();
            if rows.len() >= count {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "view kept {} of {count} alerts",
                rows.len()
            );
            // The API has no push for scripts; the page's feed is tested in the browser.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(mut self) -> Vec<String> {
        let running = self.running.take().expect("running");
        let (status, _, mut stderr) = running.terminate();
        assert!(status.success(), "view exited with {status}: {stderr:?}");
        let mut all = std::mem::take(&mut self.stderr);
        all.append(&mut stderr);
        assert!(!all.iter().any(|l| l.contains("panicked")), "{all:?}");
        all
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if let Some(mut running) = self.running.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

/// A chromedriver with one headless chromium session.
struct Browser {
    driver: Child,
    base: String,
    _profile: tempfile::TempDir,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    fn start() -> Self {
        let port = free_port();
        let driver = Command::new(driver_path())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (.ci/run installs Debian's chromium-driver)");
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            _profile: tempfile::tempdir().unwrap(),
        };
        browser.wait_ready();
        let profile = browser._profile.path().display().to_string();
        let answer = browser.call("POST", "/session", json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium_path(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1500,1000",
                    format!("--user-data-dir={profile}")]
            }
        }}}));
        let session = answer["sessionId"].as_str().expect("a session").to_string();
        browser.base = format!("{}/session/{session}", browser.base);
        browser.call(
            "POST",
            "/timeouts",
            json!({"script": 60_000, "pageLoad": 60_000}),
        );
        browser
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while agent()
            .get(&format!("{}/status", self.base))
            .call()
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            // chromedriver offers no readiness signal but its port.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn call(&self, method: &str, path: &str, body: Json) -> Json {
        let url = format!("{}{path}", self.base);
        let mut response = match method {
            "GET" => agent().get(&url).call(),
            _ => agent()
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string().as_bytes()),
        }
        .expect(&url);
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap();
        let answer: Json = serde_json::from_str(&text).unwrap_or(Json::Null);
        assert_eq!(response.status().as_u16(), 200, "{method} {path}: {text}");
        answer["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body) in the page and returns its value.
    fn run(&self, script: &str) -> Json {
        self.call(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    /// Resolves once `condition` (a JS expression) holds in the page, checking
    /// after each change of the page (a MutationObserver) and each image load.
    fn wait_for(&self, what: &str, condition: &str) {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             const check = () => {{ try {{ return Boolean({condition}); }} catch (e) {{ return false; }} }};
             if (check()) return done(true);
             const observer = new MutationObserver(() => {{ if (check()) {{ observer.disconnect(); done(true); }} }});
             observer.observe(document, {{ subtree: true, childList: true, attributes: true, characterData: true }});
             document.addEventListener('load', () => {{ if (check()) {{ observer.disconnect(); done(true); }} }}, true);
             setTimeout(() => {{ observer.disconnect(); done(check()); }}, 50000);"
        );
        let held = self.call(
            "POST",
            "/execute/async",
            json!({ "script": script, "args": [] }),
        );
        assert_eq!(
            held,
            json!(true),
            "gave up waiting in the browser for {what} ({condition})"
        );
    }

    fn key(&self, key: &str) {
        self.call(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]}),
        );
    }

    fn find(&self, css: &str) -> String {
        let element = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        element[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {element}"))
            .to_string()
    }

    /// Moves the mouse to the middle of an element.
    fn point_at(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", "/actions", json!({"actions": [{"type": "pointer", "id": "mouse",
            "parameters": {"pointerType": "mouse"},
            "actions": [{"type": "pointerMove", "duration": 0, "x": 0, "y": 0, "origin": {ELEMENT: id}}]}]}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        let id = element[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {element}"))
            .to_string();
        self.call("POST", &format!("/element/{id}/clear"), json!({}));
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let data = self.call("GET", "/screenshot", Json::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = agent().delete(&self.base).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn driver_path() -> PathBuf {
    std::env::var_os("ALERTSTREAM_CHROMEDRIVER")
        .map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from)
}

fn chromium_path() -> String {
    std::env::var("ALERTSTREAM_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string())
}

/// Light-curve marks a ZTF packet holds, counted here from its JSON by the
/// rules the page documents: detections (the candidate and every previous
/// candidate with a magnitude), upper limits (previous candidates without
/// one but with a limit), forced points (usable fp_hists entries).
fn expected_marks(alert: &Json) -> (usize, usize, usize) {
    let finite = |v: &Json| v.as_f64().is_some_and(|x| x.is_finite() && x != -99999.0);
    let history = alert["prv_candidates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let with_time = |c: &&Json| finite(&c["jd"]);
    let detections = 1 + history
        .iter()
        .filter(with_time)
        .filter(|c| finite(&c["magpsf"]))
        .count();
    let limits = history
        .iter()
        .filter(with_time)
        .filter(|c| !finite(&c["magpsf"]) && finite(&c["diffmaglim"]))
        .count();
    let forced = alert["fp_hists"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter(with_time)
                .filter(|p| {
                    finite(&p["forcediffimflux"])
                        && p["forcediffimfluxunc"]
                            .as_f64()
                            .is_some_and(|u| u > 0.0 && u != -99999.0)
                        && finite(&p["magzpsci"])
                })
                .count()
        })
        .unwrap_or(0);
    (detections, limits, forced)
}

#[test]
fn the_page_follows_the_stream_and_shows_cutouts_and_light_curves() {
    let topic = common::topic("view-page");
    common::create_topic(&topic, 1);
    let group = common::topic("view-watched-group");
    let view = View::start(&[&topic, "--group", &group]);
    let browser = Browser::start();
    browser.goto(&view.url("/"));
    browser.wait_for(
        "the page",
        "document.querySelector('#alerts tbody') && document.querySelector('#topics .topic')",
    );
    // Set before the alerts arrive: still there after, so the page never reloaded.
    browser.run("window.notReloaded = true;");

    let fixtures = ztf_fixtures().display().to_string();
    ok(&[
        "send",
        &topic,
        "--alerts",
        &fixtures,
        "--format",
        "container",
    ]);
    browser.wait_for(
        "20 rows",
        "document.querySelectorAll('#alerts tbody tr').length === 20",
    );
    assert_eq!(
        browser.run("return window.notReloaded === true;"),
        json!(true),
        "the page reloaded"
    );
    let rows = view.wait_for_alerts(20);
    let started = Instant::now();

    // j opens the newest alert; its three cutouts decode at 63 x 63.
    browser.key("j");
    browser.wait_for("the first alert", "document.querySelector('#alerts tbody tr.selected') && !document.getElementById('detail').hidden");
    let first_id = rows[0]["object_id"].as_str().unwrap().to_string();
    browser.wait_for(
        "its title",
        &format!(
            "document.getElementById('detail-title').textContent === {}",
            json!(first_id)
        ),
    );
    browser.wait_for(
        "three decoded cutouts",
        "[...document.querySelectorAll('#cutouts img')].every(i => i.complete && i.naturalWidth > 0)",
    );
    let sizes = browser.run("return [...document.querySelectorAll('#cutouts img')].map(i => [i.naturalWidth, i.naturalHeight]);");
    assert_eq!(sizes, json!([[63, 63], [63, 63], [63, 63]]), "cutout sizes");

    // One mark per detection, limit and forced point of the packet.
    let alert = get_json(&view.url(&format!("/api/alerts/{topic}/0/{}", rows[0]["offset"])));
    assert_eq!(alert["objectId"], json!(first_id));
    let (detections, limits, forced) = expected_marks(&alert);
    browser.wait_for(
        "the light curve",
        "document.querySelector('#lightcurve svg')",
    );
    let marks = browser.run(
        "const n = c => document.querySelectorAll('#lightcurve svg .mark.' + c).length;
         return [n('detection'), n('limit'), n('forced')];",
    );
    assert_eq!(
        marks,
        json!([detections, limits, forced]),
        "marks of {first_id}"
    );
    assert!(detections >= 1);

    // The value of the pixel under the pointer, in FITS orientation: the
    // middle of the enlarged 63 x 63 image is pixel (31, 31).
    let pixels = get_json(&view.url(&format!(
        "/api/alerts/{topic}/0/{}/cutouts",
        rows[0]["offset"]
    )));
    let expected = pixels["science"]["pixels"][31 * 63 + 31]
        .as_f64()
        .expect("a finite centre pixel");
    browser.point_at("#cutout-science img");
    browser.wait_for(
        "the pixel value",
        "document.querySelector('#cutout-science .pixel').textContent.startsWith('(31, 31) = ')",
    );
    let caption =
        browser.run("return document.querySelector('#cutout-science .pixel').textContent;");
    let shown: f64 = caption
        .as_str()
        .unwrap()
        .rsplit("= ")
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (shown - expected).abs() <= 1e-6 * expected.abs().max(1.0),
        "{caption} vs {expected}"
    );

    // The watched group never read the topic: all 20 are its lag.
    browser.wait_for(
        "the group's lag",
        &format!(
            "document.getElementById('topics').textContent.includes({})",
            json!(format!("group {group}: lag 20"))
        ),
    );

    // The field tree holds the alert's fields.
    // 64-bit ids (ZTF's candid) keep every digit, which a JavaScript number would not.
    let candid = alert["candid"].as_u64().expect("a candid").to_string();
    assert!(candid.len() >= 17);
    browser.wait_for(
        "the field tree",
        &format!(
            "document.getElementById('fields').textContent.includes({})",
            json!(format!("candid: {candid}"))
        ),
    );
    let tree = browser.run("return document.getElementById('fields').textContent;");
    assert!(
        tree.as_str().unwrap().contains("candidate") && tree.as_str().unwrap().contains(&first_id)
    );

    // j moves to the next alert.
    browser.key("j");
    let second_id = rows[1]["object_id"].as_str().unwrap();
    browser.wait_for(
        "the second alert",
        &format!(
            "document.getElementById('detail-title').textContent === {}",
            json!(second_id)
        ),
    );
    let selected = browser.run("return [...document.querySelectorAll('#alerts tbody tr')].findIndex(r => r.classList.contains('selected'));");
    assert_eq!(selected, json!(1));
    browser.key("k");
    browser.wait_for(
        "back to the first",
        &format!(
            "document.getElementById('detail-title').textContent === {}",
            json!(first_id)
        ),
    );

    // A filter typed in the box leaves exactly the rows it selects.
    let bright: Vec<&str> = rows
        .iter()
        .filter(|r| r["value"].as_f64().is_some_and(|m| m < 17.0))
        .map(|r| r["object_id"].as_str().unwrap())
        .collect();
    assert!(
        !bright.is_empty() && bright.len() < rows.len(),
        "the fixtures hold bright and faint alerts"
    );
    browser.type_into("#where", "candidate.magpsf < 17.0\u{E007}");
    browser.wait_for(
        "the filtered rows",
        &format!(
            "document.querySelectorAll('#alerts tbody tr').length === {}",
            bright.len()
        ),
    );
    let shown = browser.run("return [...document.querySelectorAll('#alerts tbody tr')].map(r => r.cells[0].textContent);");
    let mut shown: Vec<String> = serde_json::from_value(shown).unwrap();
    let mut expected: Vec<String> = bright.iter().map(|s| s.to_string()).collect();
    shown.sort();
    expected.sort();
    assert_eq!(shown, expected);

    // A bad expression is explained, not applied.
    browser.type_into("#where", "candidate.nosuch < 1\u{E007}");
    browser.wait_for(
        "the error",
        "document.getElementById('where-error').textContent.includes('nosuch')",
    );

    common::report(&format!(
        "view: page interactive with 20 alerts, checks took {:?}",
        started.elapsed()
    ));
    let shot = common::root().join("target/view-screenshot.png");
    browser.type_into("#where", "\u{E007}");
    browser.wait_for(
        "all rows again",
        "document.querySelectorAll('#alerts tbody tr').length === 20",
    );
    browser.run("document.activeElement.blur();");
    browser.key("j");
    browser.wait_for("cutouts", "[...document.querySelectorAll('#cutouts img')].every(i => i.complete && i.naturalWidth > 0) && document.querySelector('#lightcurve svg')");
    browser.screenshot(&shot);
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a screenshot at {}",
        shot.display()
    );
    drop(browser);
    view.stop();
}

/// What a hostile producer could put in an alert's text.
const HOSTILE_ID: &str = "<img src=x onerror=\"window.pwned=1;fetch('/pwned')\">";
const HOSTILE_TEXT: &str = "</script><script>window.pwned=2</script>";

/// A FITS header claiming 100000 x 100000 pixels, and nothing after it.
fn huge_fits_header() -> Vec<u8> {
    let cards = [
        "SIMPLE  =                    T",
        "BITPIX  =                  -32",
        "NAXIS   =                    2",
        "NAXIS1  =               100000",
        "NAXIS2  =               100000",
        "END",
    ];
    let mut header: Vec<u8> = cards
        .iter()
        .flat_map(|c| format!("{c:<80}").into_bytes())
        .collect();
    header.resize(2880, b' ');
    header
}

/// A real ZTF alert with hostile text in its id and a string field, and
/// cutouts that are garbage, a 100000 x 100000 header, and truncated gzip.
fn hostile_alert_file(dir: &Path) -> PathBuf {
    let source = ztf_fixtures().join("v3.3_472263571115115000.avro");
    let reader = apache_avro::Reader::new(std::fs::File::open(&source).unwrap()).unwrap();
    let schema = reader.writer_schema().clone();
    let mut alert = reader.into_iter().next().unwrap().unwrap();
    let Value::Record(fields) = &mut alert else {
        panic!("a record")
    };
    let stamps: [Vec<u8>; 3] = [
        b"not a FITS file at all".to_vec(),
        huge_fits_header(),
        vec![0x1f, 0x8b, 8, 0, 0, 0],
    ];
    let mut cutouts = stamps.iter();
    for (name, value) in fields.iter_mut() {
        match name.as_str() {
            "objectId" => *value = Value::String(HOSTILE_ID.into()),
            "candidate" => set_string(value, "programpi", HOSTILE_TEXT),
            n if n.starts_with("cutout") => set_bytes(value, "stampData", cutouts.next().unwrap()),
            _ => {}
        }
    }
    let path = dir.join("hostile.avro");
    let mut writer = apache_avro::Writer::new(&schema, Vec::new());
    writer.append(alert).unwrap();
    std::fs::write(&path, writer.into_inner().unwrap()).unwrap();
    path
}

fn record_fields(value: &mut Value) -> &mut Vec<(String, Value)> {
    match value {
        Value::Union(_, inner) => record_fields(inner),
        Value::Record(fields) => fields,
        other => panic!("not a record: {other:?}"),
    }
}

fn set_string(record: &mut Value, field: &str, text: &str) {
    for (name, value) in record_fields(record).iter_mut() {
        if name == field {
            *value = match value {
                Value::Union(i, _) => Value::Union(*i, Box::new(Value::String(text.into()))),
                _ => Value::String(text.into()),
            };
        }
    }
}

fn set_bytes(record: &mut Value, field: &str, bytes: &[u8]) {
    for (name, value) in record_fields(record).iter_mut() {
        if name == field {
            *value = Value::Bytes(bytes.to_vec());
        }
    }
}

#[test]
fn hostile_text_and_cutouts_stay_harmless_behind_a_token() {
    let topic = common::topic("view-hostile");
    common::create_topic(&topic, 1);
    let dir = tempfile::tempdir().unwrap();
    let file = hostile_alert_file(dir.path());
    let view = View::start(&[&topic, "--token", "s3cret", "--from", "-1h"]);
    ok(&[
        "send",
        &topic,
        "--alerts",
        &file.display().to_string(),
        "--format",
        "container",
    ]);

    // The token: required everywhere but /healthz, as a header or a parameter.
    assert_eq!(get(&view.url("/")).0, 401);
    assert_eq!(get(&view.url("/api/alerts")).0, 401);
    assert_eq!(get(&view.url("/healthz")).0, 200);
    let mut bearer = agent()
        .get(&view.url("/api/stats"))
        .header("Authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(
        bearer.status().as_u16(),
        200,
        "{}",
        bearer.body_mut().read_to_string().unwrap()
    );
    let with = |path: &str| {
        view.url(&format!(
            "{path}{}token=s3cret",
            if path.contains('?') { "&" } else { "?" }
        ))
    };
    let deadline = Instant::now() + common::RUN_LIMIT;
    let row = loop {
        let rows = get_json(&with("/api/alerts"))["alerts"]
            .as_array()
            .unwrap()
            .clone();
        if let Some(row) = rows.first() {
            break row.clone();
        }
        assert!(Instant::now() < deadline, "the hostile alert never arrived");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(row["object_id"], json!(HOSTILE_ID));
    let offset = row["offset"].as_i64().unwrap();

    // Every cutout: a placeholder PNG and the reason, no crash.
    for stamp in ["science", "template", "difference"] {
        let (status, headers, body) =
            get(&with(&format!("/cutouts/{topic}/0/{offset}/{stamp}.png")));
        assert_eq!(status, 200, "{stamp}");
        assert!(body.starts_with(b"\x89PNG"), "{stamp}: a PNG");
        assert!(headers.contains("x-cutout-error"), "{stamp}: {headers}");
    }
    let described = get_json(&with(&format!("/api/alerts/{topic}/0/{offset}/cutouts")));
    for stamp in ["science", "template", "difference"] {
        assert!(
            described[stamp]["error"].is_string(),
            "{stamp}: {}",
            described[stamp]
        );
    }
    assert!(
        described["template"]["error"]
            .as_str()
            .unwrap()
            .contains("100000"),
        "{}",
        described["template"]
    );

    // Unknown routes and offsets: 404; nothing but GET.
    assert_eq!(
        get(&with(&format!("/api/alerts/{topic}/0/{}", offset + 1000))).0,
        404
    );
    assert_eq!(
        get(&with(&format!("/api/alerts/{topic}/0/not-a-number"))).0,
        404
    );
    assert_eq!(
        get(&with(&format!("/cutouts/{topic}/0/{offset}/other.png"))).0,
        404
    );
    assert_eq!(get(&with("/no/such/page")).0, 404);
    let post = agent().post(&with("/api/alerts")).send(&b"{}"[..]).unwrap();
    assert_eq!(post.status().as_u16(), 405, "the page is read-only");

    // In the browser: the text shows as text and runs nothing.
    let browser = Browser::start();
    browser.goto(&with("/"));
    browser.wait_for(
        "the row",
        "document.querySelectorAll('#alerts tbody tr').length === 1",
    );
    browser.run("document.activeElement.blur();");
    browser.key("j");
    browser.wait_for(
        "the three reasons",
        "[...document.querySelectorAll('#cutouts .why')].every(w => w.textContent.length > 0)",
    );
    browser.wait_for(
        "the field tree",
        &format!(
            "document.getElementById('fields').textContent.includes({})",
            json!(HOSTILE_TEXT)
        ),
    );
    let cell =
        browser.run("return document.querySelector('#alerts tbody tr').cells[0].textContent;");
    assert_eq!(cell, json!(HOSTILE_ID));
    let verdict = browser.run(
        "return {
           pwned: typeof window.pwned,
           images: document.querySelectorAll('#alerts img, #fields img, #detail-title img').length,
           scripts: document.querySelectorAll('script').length,
           elsewhere: performance.getEntriesByType('resource').map(e => e.name)
             .filter(n => !n.startsWith(location.origin) || n.includes('/pwned') || n.endsWith('/x')),
         };",
    );
    assert_eq!(
        verdict,
        json!({"pwned": "undefined", "images": 0, "scripts": 1, "elsewhere": []})
    );
    drop(browser);
    view.stop();
}

#[test]
fn an_open_address_without_a_token_is_warned_about() {
    let topic = common::topic("view-open");
    let view = View::start_on("0.0.0.0:0", &[&topic]);
    let port = view.base.rsplit(':').next().unwrap().to_string();
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/")).0,
        200,
        "served on every address"
    );
    let stderr = view.stop();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("no authentication") && l.contains("--token")),
        "{stderr:?}"
    );
}

/// The cutout `stamp` of the alert at `at` (topic/partition/offset) is drawn
/// without error, as a PNG of the size the cutouts API gives for it.
fn assert_cutout_drawn(view: &View, at: &str, stamp: &str) {
    let (status, headers, png) = get(&view.url(&format!("/cutouts/{at}/{stamp}.png")));
    assert_eq!(
        (status, headers.contains("x-cutout-error")),
        (200, false),
        "{stamp}: {headers}"
    );
    let described = get_json(&view.url(&format!("/api/alerts/{at}/cutouts")));
    let size = |k: &str| described[stamp][k].as_u64().unwrap() as u32;
    assert_eq!(png_size(&png), (size("width"), size("height")), "{stamp}");
}

/// A PNG's width and height, from its IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && &png[12..16] == b"IHDR",
        "not a PNG"
    );
    let word = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[test]
fn rubin_alerts_show_fluxes_cutouts_and_a_flux_light_curve() {
    let topic = common::topic("view-rubin");
    common::create_topic(&topic, 1);
    let schema = PathBuf::from(common::python_script("registry_peer.py", &["schema-root"]).trim())
        .join("11/1");
    let schema = schema.display().to_string();
    let view = View::start(&[&topic, "--schema", &schema]);
    ok(&[
        "send",
        &topic,
        "5",
        "--simulate",
        "rubin",
        "--schema",
        &schema,
        "--seed",
        "7",
    ]);
    let rows = view.wait_for_alerts(5);
    for row in &rows {
        assert_eq!(row["unit"], json!("nJy"), "{row}");
        assert!(
            row["band"].is_string() && row["value"].is_number() && row["object_id"].is_string(),
            "{row}"
        );
    }
    let at = format!("{topic}/0/{}", rows[0]["offset"]);
    for stamp in ["science", "template", "difference"] {
        assert_cutout_drawn(&view, &at, stamp);
        let (status, _, fits) = get(&view.url(&format!("/cutouts/{at}/{stamp}.fits")));
        assert_eq!(status, 200);
        assert!(
            fits.starts_with(b"SIMPLE"),
            "{stamp}: Rubin's cutouts are plain FITS"
        );
    }
    let (status, headers, svg) = get(&view.url(&format!("/api/alerts/{at}/lightcurve.svg")));
    assert_eq!(status, 200);
    assert!(headers.contains("image/svg+xml"));
    let svg = String::from_utf8(svg).unwrap();
    let alert = get_json(&view.url(&format!("/api/alerts/{at}")));
    let history = alert["prvDiaSources"].as_array().map_or(0, Vec::len);
    let forced = alert["prvDiaForcedSources"].as_array().map_or(0, Vec::len);
    assert_eq!(
        svg.matches("class=\"mark detection\"").count(),
        1 + history,
        "{svg}"
    );
    assert_eq!(svg.matches("class=\"mark forced\"").count(), forced);
    assert!(svg.contains("nJy"));
    let (status, _, raw) = get(&view.url(&format!("/api/alerts/{at}/raw")));
    assert_eq!(status, 200);
    assert!(raw.len() > 1000, "the message's bytes");
    // Bad parameters get a JSON reason.
    let (status, _, body) = get(&view.url("/api/alerts?limit=abc"));
    assert_eq!(status, 400);
    let body: Json = serde_json::from_slice(&body).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("limit=abc"),
        "{body}"
    );
    view.stop();

    // -e: view exits once every topic is read to its end, as the other consumers do.
    let output = common::run(&[
        "view",
        &topic,
        "--from",
        "-1h",
        "-e",
        "--listen",
        "127.0.0.1:0",
        "--schema",
        &schema,
    ]);
    assert!(output.status.success(), "{}", common::stderr(&output));
    assert!(common::stderr(&output).contains("read 1 topic(s) to their end"));
}

#[test]
fn an_avro_archive_is_served_with_its_stream_places_and_searched_by_object_id() {
    let topic = common::topic("view-archive");
    let fixtures = ztf_fixtures().display().to_string();
    ok(&[
        "send",
        &topic,
        "--alerts",
        &fixtures,
        "--format",
        "container",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let out = archive.display().to_string();
    ok(&[
        "record",
        &topic,
        "--out",
        &out,
        "--group",
        &common::topic("archivers"),
        "-e",
        "--roll-alerts",
        "7",
    ]);
    let printed = common::json_lines(&ok(&[
        "print",
        &topic,
        "--group",
        &common::topic("readers"),
        "-e",
        "--meta",
    ]));
    assert_eq!(printed.len(), 20);
    std::fs::write(archive.join("notes.parquet"), b"PAR1").unwrap();

    let view = View::start(&["--archive", &out]);
    let rows = view.wait_for_alerts(20);
    assert_eq!(rows.len(), 20);
    // Healthy, and not on the word of brokers it never reads.
    let (status, _, body) = get(&view.url("/healthz"));
    assert_eq!(
        (status, String::from_utf8_lossy(&body).trim()),
        (200, "ok: serving files (no Kafka)")
    );
    // Each alert under the topic, partition and offset it had, equal to print's.
    for line in &printed {
        let offset = line["_kafka"]["offset"].as_i64().unwrap();
        let mut alert = get_json(&view.url(&format!("/api/alerts/{topic}/0/{offset}")));
        let mut expected = line.clone();
        expected.as_object_mut().unwrap().remove("_kafka");
        alert.as_object_mut().unwrap().remove("_kafka");
        assert_eq!(alert, expected, "offset {offset}");
    }
    // Search by object id is a --where expression.
    let id = printed[3]["objectId"].as_str().unwrap();
    let expected = printed
        .iter()
        .filter(|l| l["objectId"] == json!(id))
        .count();
    let found = get_json(&view.url(&format!("/api/alerts?where=objectId%20%3D%3D%20%22{id}%22")));
    let found = found["alerts"].as_array().unwrap();
    assert_eq!(found.len(), expected);
    assert!(found
        .iter()
        .all(|r| r["object_id"] == json!(id) && r["framing"] == json!("archive")));
    let at = format!("{topic}/0/{}", found[0]["offset"]);
    assert_cutout_drawn(&view, &at, "difference");
    let stderr = view.stop();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("notes.parquet: not shown")),
        "a file that is not Parquet is named, not silently left out: {stderr:?}"
    );
}

/// A Parquet archive (record --format parquet, with and without stamps)
/// is served as an Avro one is: each alert under its stream place, equal to
/// print's, its cutouts drawn; without stamps, the same alerts with null
/// cutouts.
#[test]
fn a_parquet_archive_is_served_like_an_avro_one() {
    let topic = common::topic("view-parquet");
    ok(&["send", &topic]);
    let printed = common::json_lines(&ok(&[
        "print",
        &topic,
        "--group",
        &common::topic("readers"),
        "-e",
        "--meta",
    ]));
    assert_eq!(printed.len(), 12);
    let dir = tempfile::tempdir().unwrap();
    for stamps in [true, false] {
        let out = dir
            .path()
            .join(format!("parquet-{stamps}"))
            .display()
            .to_string();
        let mut record = vec![
            "record",
            &topic,
            "--out",
            &out,
            "-e",
            "--format",
            "parquet",
            "--roll-alerts",
            "5",
        ];
        let group = common::topic("archivers");
        record.extend(["--group", &group]);
        if !stamps {
            record.push("--no-stamps");
        }
        ok(&record);
        // A hostile file among them: Parquet's magic around garbage that
        // claims a footer of 1,000 bytes.
        let mut hostile = b"PAR1".to_vec();
        hostile.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
        hostile.extend(1000u32.to_le_bytes());
        hostile.extend(b"PAR1");
        std::fs::write(Path::new(&out).join("hostile.parquet"), hostile).unwrap();
        let view = View::start(&["--archive", &out]);
        let rows = view.wait_for_alerts(12);
        assert_eq!(rows.len(), 12);
        for line in &printed {
            let offset = line["_kafka"]["offset"].as_i64().unwrap();
            let mut alert = get_json(&view.url(&format!("/api/alerts/{topic}/0/{offset}")));
            let mut expected = line.clone();
            expected.as_object_mut().unwrap().remove("_kafka");
            alert.as_object_mut().unwrap().remove("_kafka");
            if !stamps {
                // Left out of the archive: the alert has no cutouts.
                for cutout in ["cutoutScience", "cutoutTemplate", "cutoutDifference"] {
                    expected.as_object_mut().unwrap().remove(cutout);
                    assert!(alert.get(cutout).is_none_or(|c| c.is_null()), "{cutout}");
                    alert.as_object_mut().unwrap().remove(cutout);
                }
            }
            assert_eq!(alert, expected, "offset {offset}, stamps {stamps}");
        }
        if stamps {
            let at = format!("{topic}/0/{}", rows[0]["offset"]);
            assert_cutout_drawn(&view, &at, "science");
        }
        let stderr = view.stop();
        assert!(
            stderr
                .iter()
                .any(|l| l.contains("hostile.parquet: not shown")),
            "{stderr:?}"
        );
    }
}

/// view reads from the end of each partition, but a topic made after it
/// started holds only what is new to it: its first alerts are shown, not
/// skipped (a newcomer's first `send` after starting the page showed none).
#[test]
fn the_first_alerts_of_a_topic_made_after_view_started_are_shown() {
    let topic = common::topic("view-made-later");
    let mut view = View::start(&[&topic]);
    let waiting = |l: &str| l.contains("waiting for it");
    if !view.stderr.iter().any(|l| waiting(l)) {
        let running = view.running.as_ref().expect("running");
        running.wait_stderr("the wait for the topic", waiting, &mut view.stderr);
    }
    common::ok(&["send", &topic, "3", "--no-stamps"]);
    assert_eq!(view.wait_for_alerts(3).len(), 3);
    view.stop();
}

#[test]
fn a_closed_log_pipe_neither_crashes_nor_holds_view() {
    use std::io::BufRead;
    let topic = common::topic("view-closed-pipe");
    common::create_topic(&topic, 1);
    // As `alertstream view ... 2>&1 | head -1`: stderr's reader leaves after one line.
    let mut child = common::alertstream()
        .args(["view", &topic, "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("view on http://"), "{first}");
    // The reader is gone; more lines are logged (the topic is read, the signal noted).
    ok(&["send", &topic, "3", "--no-stamps"]);
    common::signal(child.id(), "TERM");
    let output = common::wait_with_limit(child, common::RUN_LIMIT);
    assert!(
        output.status.success(),
        "exit {:?} (101: a panic on the broken pipe)",
        output.status.code()
    );
}
