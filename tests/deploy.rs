//! Static checks of `deploy/`: the Containerfile and the Kubernetes manifests cannot be built or
//! applied on this machine (no container runtime, no cluster), so these tests check what can be
//! checked without them:
//!
//! - every manifest parses (multi-document YAML) and has its kind's required fields;
//! - every flag the manifests and the Containerfile pass to a binary is in that binary's `--help`
//!   (the real binaries, built once), and every `--name` is one of the run's collaborators;
//! - the ports of the Service, the probes and the containers are those of `--listen`/`--admin`,
//!   the probe paths are routes of the admin server, and the envoys dial the Service's name;
//! - the certificate Secrets, mounted as the pods would see them, are the files each process reads
//!   (loaded with the runtime's own `TlsConfig::from_dir` and signing loaders from certificates
//!   made by `flspec-fed certs`), and no Secret holds the CA key;
//! - every absolute path passed to a binary is on a volume of the pod or in the image (the
//!   state folder on a writable one), and every process that loads MNIST passes `--data`;
//! - `kubectl kustomize` (where kubectl is installed; skipped with a printed reason otherwise)
//!   builds the kustomization, with one Secret per process holding what the pods mount;
//! - the Containerfile copies paths that exist in the repository or the build output, and exactly
//!   the libtorch libraries the example links (read from the ELF files' `DT_NEEDED`).
#![cfg(feature = "torch")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use flspec_federated::TlsConfig;
use flspec_federated::signing::{SigningCredentials, SigningTrust};
use serde::Deserialize;
use serde_norway::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The namespace every namespaced object lives in.
const NAMESPACE: &str = "flspec";
/// The certificate command of deploy/README.md: the test runs it and mounts its output.
const CERTS_COMMAND: &str = "flspec-fed certs --out deploy/k8s/certs --director-host flspec-director.flspec.svc --envoy Bengaluru --envoy Portland";
/// The libraries of glibc (Debian's `libc6`, in every Debian image).
const LIBC6: [&str; 8] = [
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
    "ld-linux-x86-64.so.2",
    "linux-vdso.so.1",
    "libutil.so.1",
];
/// Other system libraries the example and libtorch need, and their Debian packages.
const SYSTEM_LIBS: [(&str, &str); 2] = [
    ("libstdc++.so.6", "libstdc++6"),
    ("libgcc_s.so.1", "libgcc-s1"),
];

fn root() -> &'static Path {
    Path::new(ROOT)
}

/// One YAML document of a manifest file.
struct Doc {
    file: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }
    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }
}

/// Every document of every `deploy/k8s/*.yaml`, in file order.
fn manifests() -> Vec<Doc> {
    let dir = root().join("deploy/k8s");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let text = fs::read_to_string(&path).expect("manifest readable");
        let file = path
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        for de in serde_norway::Deserializer::from_str(&text) {
            let value =
                Value::deserialize(de).unwrap_or_else(|e| panic!("{file}: invalid YAML: {e}"));
            if !value.is_null() {
                docs.push(Doc {
                    file: file.clone(),
                    value,
                });
            }
        }
    }
    docs
}

fn find<'a>(docs: &'a [Doc], kind: &str, name: &str) -> &'a Doc {
    docs.iter()
        .find(|d| d.kind() == kind && d.name() == name)
        .unwrap_or_else(|| panic!("no {kind} named {name} in deploy/k8s"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|seq| {
            seq.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => panic!("expected a string, got {other:?} (quote numbers in args)"),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The pod template's spec of a workload (Deployment or Job).
fn pod_spec(doc: &Doc) -> &Value {
    &doc.value["spec"]["template"]["spec"]
}

/// The workloads that run the image: (document, its only container).
fn workloads(docs: &[Doc]) -> Vec<(&Doc, &Value)> {
    docs.iter()
        .filter(|d| matches!(d.kind(), "Deployment" | "Job"))
        .map(|d| {
            let containers = pod_spec(d)["containers"].as_sequence().expect("containers");
            assert_eq!(containers.len(), 1, "{}: one container per pod", d.name());
            (d, &containers[0])
        })
        .collect()
}

/// The value of `--flag` in an argument list (`--flag VALUE` or `--flag=VALUE`).
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let eq = format!("{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        if a == name {
            args.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(&eq)
        }
    })
}

/// The `--flags` of an argument list.
fn flags(args: &[String]) -> BTreeSet<String> {
    args.iter()
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_string())
        .collect()
}

fn port(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("`{addr}` is not HOST:PORT"))
}

/// The example and `flspec-fed`, built once (debug, in this target dir) for their `--help`.
fn binaries() -> &'static (PathBuf, PathBuf) {
    static BINARIES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BINARIES.get_or_init(|| {
        // The same two builds as tests/federated_secagg_mnist.rs, so that both tests share
        // their artifacts (one invocation for both packages unifies their features differently).
        for args in [
            &["build", "--example", "secagg_mnist"][..],
            &["build", "-p", "flspec-federated", "--bin", "flspec-fed"][..],
        ] {
            let mut cargo = Command::new(env!("CARGO"));
            common::cargo::without_package_env(&mut cargo);
            let status = cargo
                .args(args)
                .current_dir(root())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "cargo {args:?} failed");
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root().join("target"), PathBuf::from);
        (
            target.join("debug/examples/secagg_mnist"),
            target.join("debug/flspec-fed"),
        )
    })
}

/// The `--flags` a binary's `--help` lists for `command` (a subcommand path, or none).
fn help_flags(binary: &Path, command: &[&str]) -> BTreeSet<String> {
    let out = Command::new(binary)
        .args(command)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("running {} --help: {e}", binary.display()));
    assert!(
        out.status.success(),
        "{} {command:?} --help failed: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8_lossy(&out.stdout);
    let found: BTreeSet<String> = help
        .split_whitespace()
        .filter(|t| t.starts_with("--"))
        .map(|t| {
            t.trim_end_matches([',', '.'])
                .split(['=', '[', '<'])
                .next()
                .unwrap_or(t)
                .to_string()
        })
        .collect();
    assert!(
        found.contains("--help"),
        "{} {command:?} --help lists no flags:\n{help}",
        binary.display()
    );
    found
}

/// The example's subcommand in an argument list (`director`, `envoy`) or none (a run).
fn subcommand(args: &[String]) -> Vec<&str> {
    match args.first() {
        Some(a) if !a.starts_with('-') => vec![a.as_str()],
        _ => vec![],
    }
}

/// The Containerfile's lines, comments dropped and `\` continuations joined.
fn containerfile() -> Vec<String> {
    let text =
        fs::read_to_string(root().join("deploy/Containerfile")).expect("deploy/Containerfile");
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    lines
}

/// The JSON array of a Containerfile instruction (`CMD [...]`, `ENTRYPOINT [...]`).
fn exec_form(lines: &[String], instruction: &str) -> Vec<String> {
    let line = lines
        .iter()
        .rfind(|l| l.starts_with(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("the Containerfile has no {instruction}"));
    serde_json::from_str(&line[instruction.len()..])
        .unwrap_or_else(|e| panic!("{instruction} is not an exec-form JSON array: {e}"))
}

#[test]
fn every_manifest_parses_and_has_its_kinds_required_fields() {
    let docs = manifests();
    let kinds: BTreeMap<&str, usize> = docs.iter().fold(BTreeMap::new(), |mut m, d| {
        *m.entry(d.kind()).or_default() += 1;
        m
    });
    let expected: BTreeMap<&str, usize> = [
        ("Deployment", 3),
        ("Job", 1),
        ("Kustomization", 1),
        ("Namespace", 1),
        ("PersistentVolumeClaim", 1),
        ("Service", 1),
    ]
    .into();
    assert_eq!(kinds, expected, "the kinds in deploy/k8s");
    for doc in &docs {
        let what = format!("{} {} ({})", doc.kind(), doc.name(), doc.file);
        assert!(doc.value["apiVersion"].is_string(), "{what}: apiVersion");
        if doc.kind() == "Kustomization" {
            continue;
        }
        assert!(!doc.name().is_empty(), "{what}: metadata.name");
        if doc.kind() != "Namespace" {
            assert_eq!(
                doc.value["metadata"]["namespace"].as_str(),
                Some(NAMESPACE),
                "{what}: namespace"
            );
        }
    }
    assert_eq!(
        find(&docs, "Namespace", NAMESPACE).value["apiVersion"].as_str(),
        Some("v1")
    );

    for (doc, container) in workloads(&docs) {
        let what = format!("{} {}", doc.kind(), doc.name());
        let spec = &doc.value["spec"];
        if doc.kind() == "Deployment" {
            assert_eq!(doc.value["apiVersion"].as_str(), Some("apps/v1"), "{what}");
            assert_eq!(
                spec["replicas"].as_u64(),
                Some(1),
                "{what}: one pod per identity"
            );
            assert_eq!(
                spec["strategy"]["type"].as_str(),
                Some("Recreate"),
                "{what}: never two pods with one identity"
            );
            let selector = spec["selector"]["matchLabels"]
                .as_mapping()
                .expect("selector.matchLabels");
            let labels = spec["template"]["metadata"]["labels"]
                .as_mapping()
                .expect("template labels");
            for (k, v) in selector {
                assert_eq!(
                    labels.get(k),
                    Some(v),
                    "{what}: the selector matches the pod's labels"
                );
            }
        } else {
            assert_eq!(
                pod_spec(doc)["restartPolicy"].as_str(),
                Some("Never"),
                "{what}"
            );
        }
        let pod_security = &pod_spec(doc)["securityContext"];
        assert_eq!(
            pod_security["runAsNonRoot"].as_bool(),
            Some(true),
            "{what}: runAsNonRoot"
        );
        assert_eq!(
            pod_security["runAsUser"].as_u64(),
            Some(10001),
            "{what}: the image's user"
        );
        assert_eq!(
            pod_security["fsGroup"].as_u64(),
            Some(10001),
            "{what}: fsGroup (reads the Secret files)"
        );
        let security = &container["securityContext"];
        assert_eq!(
            security["readOnlyRootFilesystem"].as_bool(),
            Some(true),
            "{what}: readOnlyRootFilesystem"
        );
        assert_eq!(
            security["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{what}"
        );
        assert!(
            container["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("flspec/secagg-mnist:")),
            "{what}: image"
        );
        for resource in ["cpu", "memory"] {
            assert!(
                !container["resources"]["requests"][resource].is_null(),
                "{what}: resources.requests.{resource}"
            );
        }
        assert!(
            !container["resources"]["limits"]["memory"].is_null(),
            "{what}: a memory limit"
        );
        assert!(
            container.get("command").is_none(),
            "{what}: args only, the image's ENTRYPOINT runs"
        );
        // Every volume mounted exists in the pod, and every Secret is mounted read-only.
        let volumes = pod_spec(doc)["volumes"].as_sequence().expect("volumes");
        for mount in container["volumeMounts"]
            .as_sequence()
            .expect("volumeMounts")
        {
            let name = &mount["name"];
            let volume = volumes
                .iter()
                .find(|v| &v["name"] == name)
                .unwrap_or_else(|| panic!("{what}: no volume {name:?}"));
            if !volume["secret"].is_null() {
                assert_eq!(
                    mount["readOnly"].as_bool(),
                    Some(true),
                    "{what}: Secret {name:?} read-only"
                );
            }
        }
    }

    let pvc = find(&docs, "PersistentVolumeClaim", "flspec-director-state");
    assert!(
        !pvc.value["spec"]["resources"]["requests"]["storage"].is_null(),
        "the state volume's size"
    );

    // The kustomization applies every manifest but the Job, which is applied on its own.
    let kustomization = docs
        .iter()
        .find(|d| d.kind() == "Kustomization")
        .expect("kustomization.yaml");
    assert_eq!(kustomization.file, "kustomization.yaml");
    let resources: BTreeSet<String> = strings(&kustomization.value["resources"])
        .into_iter()
        .collect();
    let files: BTreeSet<String> = docs
        .iter()
        .filter(|d| !matches!(d.kind(), "Kustomization" | "Job"))
        .map(|d| d.file.clone())
        .collect();
    assert_eq!(resources, files, "kustomization.yaml's resources");
}

#[test]
fn every_flag_passed_to_a_binary_is_in_its_help_and_every_site_is_a_collaborator() {
    let (example, flspec_fed) = binaries();
    let docs = manifests();
    let mut calls: Vec<(String, Vec<String>)> = workloads(&docs)
        .into_iter()
        .map(|(doc, container)| {
            (
                format!("{} {}", doc.kind(), doc.name()),
                strings(&container["args"]),
            )
        })
        .collect();
    let lines = containerfile();
    assert_eq!(
        exec_form(&lines, "ENTRYPOINT"),
        ["/usr/local/bin/secagg_mnist"],
        "the manifests' args are the example's"
    );
    calls.push((
        "the Containerfile's CMD".to_string(),
        exec_form(&lines, "CMD"),
    ));
    let mut help = BTreeMap::new();
    for (what, args) in &calls {
        let command = subcommand(args);
        let known = help
            .entry(command.clone())
            .or_insert_with(|| help_flags(example, &command));
        let unknown: Vec<_> = flags(args)
            .into_iter()
            .filter(|f| !known.contains(f))
            .collect();
        assert!(
            unknown.is_empty(),
            "{what} passes {unknown:?}, which `secagg_mnist {command:?} --help` does not list"
        );
        // Ours: without an explicit flag, the example would default to 127.0.0.1, local runs,...
        if command == ["envoy"] {
            let count: usize = flag(args, "--collaborators")
                .expect("--collaborators")
                .parse()
                .expect("a number");
            let name = flag(args, "--name").expect("--name");
            let names = flspec_examples::secagg_mnist::collaborator_names(count);
            assert!(
                names.iter().any(|n| n == name),
                "{what}: `--name {name}` is not one of {names:?}"
            );
        }
    }
    // The three kinds of process, each checked against its own help.
    assert_eq!(
        help.len(),
        3,
        "director, envoy and a run: {:?}",
        help.keys().collect::<Vec<_>>()
    );

    // The certificate command of the README.
    let readme = fs::read_to_string(root().join("deploy/README.md")).expect("deploy/README.md");
    assert!(
        readme.contains(CERTS_COMMAND),
        "deploy/README.md gives the certificate command `{CERTS_COMMAND}`"
    );
    let args: Vec<String> = CERTS_COMMAND
        .split_whitespace()
        .skip(2)
        .map(String::from)
        .collect();
    let known = help_flags(flspec_fed, &["certs"]);
    let unknown: Vec<_> = flags(&args)
        .into_iter()
        .filter(|f| !known.contains(f))
        .collect();
    assert!(
        unknown.is_empty(),
        "`{CERTS_COMMAND}` passes {unknown:?}, not in `flspec-fed certs --help`"
    );
}

#[test]
fn ports_and_probes_match_the_directors_addresses_and_the_envoys_dial_its_service() {
    let docs = manifests();
    let director = find(&docs, "Deployment", "flspec-director");
    let container = &pod_spec(director)["containers"][0];
    let args = strings(&container["args"]);
    let listen = port(flag(&args, "--listen").expect("--listen"));
    let admin = port(flag(&args, "--admin").expect("--admin"));
    for (flag_name, addr) in [
        ("--listen", flag(&args, "--listen")),
        ("--admin", flag(&args, "--admin")),
    ] {
        let host = addr.and_then(|a| a.rsplit_once(':')).map(|(h, _)| h);
        assert_eq!(
            host,
            Some("0.0.0.0"),
            "{flag_name}: all interfaces of the pod (probes and the Service reach it)"
        );
    }
    let container_ports: BTreeMap<&str, u64> = container["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("a port name"),
                p["containerPort"].as_u64().expect("containerPort"),
            )
        })
        .collect();
    assert_eq!(
        container_ports,
        [("admin", u64::from(admin)), ("grpc", u64::from(listen))].into()
    );

    let admin_routes = include_str!("../runtimes/federated/src/director/admin.rs");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(
            get["port"].as_str(),
            Some("admin"),
            "{probe} on the admin port"
        );
        assert!(
            admin_routes.contains(&format!("(\"GET\", \"{path}\")")),
            "the admin server serves GET {path}"
        );
    }

    let service = find(&docs, "Service", "flspec-director");
    assert_eq!(
        service.value["spec"]["type"].as_str(),
        Some("ClusterIP"),
        "the admin port is plain HTTP: never public"
    );
    let selector = service.value["spec"]["selector"]
        .as_mapping()
        .expect("selector");
    let labels = director.value["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .expect("labels");
    for (k, v) in selector {
        assert_eq!(
            labels.get(k),
            Some(v),
            "the Service selects the director's pod"
        );
    }
    let mut grpc_port = None;
    for p in service.value["spec"]["ports"]
        .as_sequence()
        .expect("Service ports")
    {
        let target = p["targetPort"].as_str().expect("a named targetPort");
        let container_port = container_ports
            .get(target)
            .unwrap_or_else(|| panic!("targetPort {target} is no container port"));
        assert_eq!(
            p["port"].as_u64(),
            Some(*container_port),
            "Service port {target}"
        );
        if target == "grpc" {
            grpc_port = p["port"].as_u64();
        }
    }
    let service_host = format!("{}.{}.svc", service.name(), NAMESPACE);
    let expected = format!("{service_host}:{}", grpc_port.expect("a grpc Service port"));
    assert!(
        CERTS_COMMAND.contains(&format!("--director-host {service_host}")),
        "the director's certificate names {service_host}"
    );
    let lines = containerfile();
    let cmd = exec_form(&lines, "CMD");
    assert_eq!(
        (
            flag(&cmd, "--listen").map(port),
            flag(&cmd, "--admin").map(port)
        ),
        (Some(listen), Some(admin)),
        "the Containerfile's CMD"
    );
    let expose: BTreeSet<u16> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| {
            l.split_whitespace()
                .map(|p| p.parse::<u16>().expect("a port"))
        })
        .collect();
    assert_eq!(expose, [listen, admin].into(), "EXPOSE");

    let mut dialers = 0;
    for (doc, container) in workloads(&docs) {
        let args = strings(&container["args"]);
        if let Some(addr) = flag(&args, "--director") {
            assert_eq!(
                addr,
                expected,
                "{} {} dials the director's Service",
                doc.kind(),
                doc.name()
            );
            dialers += 1;
        }
    }
    assert_eq!(dialers, 3, "two envoys and the run dial the director");
}

/// Runs the README's certificate command with its output in `out` (for deploy/k8s/certs).
fn make_certs(flspec_fed: &Path, out: &Path) {
    let args: Vec<&str> = CERTS_COMMAND.split_whitespace().skip(1).collect();
    let run = Command::new(flspec_fed)
        .args(args.iter().map(|a| {
            if *a == "deploy/k8s/certs" {
                out.as_os_str().to_owned()
            } else {
                std::ffi::OsString::from(*a)
            }
        }))
        .output()
        .expect("flspec-fed runs");
    assert!(
        run.status.success(),
        "{CERTS_COMMAND}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// What the kustomization's Secrets hold: name -> (key -> file under deploy/k8s).
fn secrets(docs: &[Doc]) -> BTreeMap<String, BTreeMap<String, String>> {
    let kustomization = docs
        .iter()
        .find(|d| d.kind() == "Kustomization")
        .expect("kustomization.yaml");
    kustomization.value["secretGenerator"]
        .as_sequence()
        .expect("secretGenerator")
        .iter()
        .map(|s| {
            let files = strings(&s["files"])
                .into_iter()
                .map(|f| {
                    let (key, path) = f
                        .split_once('=')
                        .unwrap_or_else(|| panic!("`{f}`: KEY=PATH"));
                    (key.to_string(), path.to_string())
                })
                .collect();
            (
                s["name"].as_str().expect("a Secret name").to_string(),
                files,
            )
        })
        .collect()
}

#[test]
fn mounted_certificate_secrets_are_the_files_each_process_reads() {
    let (_, flspec_fed) = binaries();
    let docs = manifests();
    let secrets = secrets(&docs);
    let tmp = tempfile::tempdir().expect("a temporary folder");
    // The README's command, with its output in the temporary folder (the kustomization's certs/).
    let k8s = tmp.path().join("k8s");
    make_certs(flspec_fed, &k8s.join("certs"));

    for (name, files) in &secrets {
        assert!(
            !files.keys().any(|k| k.contains("ca.key")),
            "Secret {name} must not hold the CA key"
        );
        for (key, path) in files {
            assert!(
                k8s.join(path).is_file(),
                "Secret {name}: {key}={path} is not a file `flspec-fed certs` writes"
            );
        }
    }

    let mut mounted = BTreeSet::new();
    for (doc, container) in workloads(&docs) {
        let what = format!("{} {}", doc.kind(), doc.name());
        let args = strings(&container["args"]);
        // The pod's file system: each Secret volume's items at its mount path.
        let pod = tmp.path().join("pods").join(doc.name());
        let volumes = pod_spec(doc)["volumes"].as_sequence().expect("volumes");
        for mount in container["volumeMounts"]
            .as_sequence()
            .expect("volumeMounts")
        {
            let volume = volumes
                .iter()
                .find(|v| v["name"] == mount["name"])
                .expect("the mount's volume");
            let Some(secret_name) = volume["secret"]["secretName"].as_str() else {
                continue;
            };
            let secret = secrets
                .get(secret_name)
                .unwrap_or_else(|| panic!("{what}: Secret {secret_name} is not generated"));
            mounted.insert(secret_name.to_string());
            let at = pod.join(
                mount["mountPath"]
                    .as_str()
                    .expect("mountPath")
                    .trim_start_matches('/'),
            );
            for item in volume["secret"]["items"]
                .as_sequence()
                .expect("items: only the files the process reads")
            {
                let key = item["key"].as_str().expect("key");
                let file = secret
                    .get(key)
                    .unwrap_or_else(|| panic!("{what}: Secret {secret_name} has no key {key}"));
                let target = at.join(item["path"].as_str().expect("path"));
                fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
                fs::copy(k8s.join(file), &target).expect("copy");
            }
        }
        let certs = pod.join(
            flag(&args, "--certs")
                .expect("--certs")
                .trim_start_matches('/'),
        );
        // What each process loads, with the loaders the binaries use.
        match subcommand(&args).as_slice() {
            ["director"] => {
                TlsConfig::from_dir(&certs, "director").unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            ["envoy"] => {
                let name = flag(&args, "--name").expect("--name");
                TlsConfig::from_dir(&certs, &format!("envoys/{name}"))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                SigningCredentials::load(&certs.join("envoys"), name)
                    .unwrap_or_else(|e| panic!("{what}: signing: {e}"));
                SigningTrust::load(&certs).unwrap_or_else(|e| panic!("{what}: signing trust: {e}"));
            }
            _ => {
                TlsConfig::from_dir(&certs, "client").unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
        // Only those files: a Secret item nobody reads would be a key handed out for nothing.
        let count = walk(&certs).len();
        let expected = match subcommand(&args).as_slice() {
            ["envoy"] => 5,
            _ => 3,
        };
        assert_eq!(count, expected, "{what}: files under --certs");
    }
    assert_eq!(
        mounted,
        secrets.keys().cloned().collect::<BTreeSet<_>>(),
        "every generated Secret is mounted by one process"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).expect("readable") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_containerfile_copies_existing_paths_and_exactly_the_libtorch_libraries_the_example_links() {
    let lines = containerfile();
    let (example, flspec_fed) = binaries();
    let libtorch_env = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(|l| l.split_whitespace())
        .find_map(|kv| kv.strip_prefix("LIBTORCH="))
        .expect("ENV LIBTORCH=... in the builder (the example's RUNPATH is $LIBTORCH/lib)");
    let runpath = format!("{libtorch_env}/lib");
    let build = lines
        .iter()
        .find(|l| l.contains("cargo build"))
        .expect("the builder's cargo build");
    assert!(
        build.contains("--example secagg_mnist")
            && build.contains("--bin flspec-fed")
            && build.contains("--release"),
        "{build}"
    );

    let mut copied_libs = BTreeSet::new();
    for line in lines.iter().filter(|l| l.starts_with("COPY ")) {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        let (from_builder, paths) = match words.first() {
            Some(w) if w.starts_with("--from=") => (true, &words[1..]),
            _ => (false, &words[..]),
        };
        let (sources, dest) = paths.split_at(paths.len() - 1);
        assert!(
            dest[0].starts_with('/') || dest[0] == ".",
            "{line}: an absolute destination"
        );
        for source in sources {
            if !from_builder {
                assert!(
                    root().join(source).exists(),
                    "{line}: {source} is not in the repository"
                );
            } else if let Some(lib) = source.strip_prefix(&format!("{runpath}/")) {
                // Built by scripts/setup-libtorch.sh: here, the project's own .libtorch/lib.
                assert!(
                    root().join(".libtorch/lib").join(lib).is_file(),
                    "{line}: {lib} is not a file setup-libtorch.sh unpacks"
                );
                assert_eq!(
                    dest[0], *source,
                    "{line}: at the same path as in the builder (the RUNPATH)"
                );
                copied_libs.insert(lib.to_string());
            } else if let Some(output) = source.strip_prefix("/src/target/release/") {
                // The release build's outputs: their debug twins exist after binaries().
                let debug = example
                    .parent()
                    .and_then(Path::parent)
                    .expect("target/debug")
                    .join(output);
                assert!(
                    debug.is_file(),
                    "{line}: cargo build makes no {output} ({} missing)",
                    debug.display()
                );
            } else {
                panic!("{line}: {source} is neither libtorch nor a build output");
            }
        }
    }

    // What the example links: DT_NEEDED of the binary and, transitively, of libtorch's libraries.
    let local = root()
        .join(".libtorch/lib")
        .canonicalize()
        .expect(".libtorch/lib (make libtorch)");
    let elf = read_elf_dynamic(example);
    assert_eq!(
        elf.runpath.as_deref(),
        Some(local.to_str().expect("utf-8")),
        "build.rs bakes $LIBTORCH/lib into the RUNPATH"
    );
    let mut needed_libtorch = BTreeSet::new();
    let mut system = BTreeSet::new();
    // flspec-fed links no libtorch: its libraries are all system ones.
    let mut queue = elf.needed;
    queue.extend(read_elf_dynamic(flspec_fed).needed);
    while let Some(lib) = queue.pop() {
        let path = local.join(&lib);
        if path.is_file() {
            if needed_libtorch.insert(lib) {
                queue.extend(read_elf_dynamic(&path).needed);
            }
        } else {
            system.insert(lib);
        }
    }
    assert_eq!(
        copied_libs, needed_libtorch,
        "the Containerfile copies exactly the libtorch libraries the example needs"
    );
    let apt = lines
        .iter()
        .rfind(|l| l.contains("apt-get install"))
        .expect("the runtime stage's apt-get install");
    for lib in system {
        if LIBC6.contains(&lib.as_str()) {
            continue;
        }
        let package = SYSTEM_LIBS
            .iter()
            .find(|(l, _)| *l == lib)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("the example needs {lib}: name its Debian package in SYSTEM_LIBS and the Containerfile"));
        assert!(
            apt.split_whitespace().any(|w| w == package),
            "the runtime stage installs {package} (for {lib})"
        );
    }
}

/// `DT_NEEDED` and `DT_RUNPATH` of an ELF64 little-endian file.
struct Dynamic {
    needed: Vec<String>,
    runpath: Option<String>,
}

fn read_elf_dynamic(path: &Path) -> Dynamic {
    use std::os::unix::fs::FileExt;
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let read = |offset: u64, len: usize| {
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        buf
    };
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let header = read(0, 64);
    assert!(
        header.starts_with(b"\x7fELF\x02\x01"),
        "{}: not an ELF64 little-endian file",
        path.display()
    );
    let (shoff, shentsize, shnum) = (
        u64_at(&header, 0x28),
        u16_at(&header, 0x3a),
        u16_at(&header, 0x3c),
    );
    let sections: Vec<Vec<u8>> = (0..u64::from(shnum))
        .map(|i| read(shoff + i * u64::from(shentsize), usize::from(shentsize)))
        .collect();
    const SHT_DYNAMIC: u32 = 6;
    let dynamic = sections
        .iter()
        .find(|s| u32_at(s, 4) == SHT_DYNAMIC)
        .expect("a dynamic section");
    let strtab = &sections[u32_at(dynamic, 40) as usize];
    let strings = read(
        u64_at(strtab, 24),
        usize::try_from(u64_at(strtab, 32)).expect("size"),
    );
    let entries = read(
        u64_at(dynamic, 24),
        usize::try_from(u64_at(dynamic, 32)).expect("size"),
    );
    let string = |offset: u64| {
        let rest = &strings[usize::try_from(offset).expect("offset")..];
        String::from_utf8_lossy(&rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())])
            .into_owned()
    };
    let (mut needed, mut runpath) = (Vec::new(), None);
    for entry in entries.chunks_exact(16) {
        match u64_at(entry, 0) {
            1 => needed.push(string(u64_at(entry, 8))),
            29 => runpath = Some(string(u64_at(entry, 8))),
            _ => {}
        }
    }
    Dynamic { needed, runpath }
}

/// The folders and files the runtime stage puts into the image: its `COPY` destinations and the
/// folders its `RUN mkdir -p` makes.
fn image_paths(lines: &[String]) -> Vec<(String, Option<String>)> {
    let runtime = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM");
    let mut paths = Vec::new();
    for line in &lines[runtime..] {
        if let Some(rest) = line.strip_prefix("COPY ") {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let from_repo = !words[0].starts_with("--from=");
            let dest = words[words.len() - 1].to_string();
            // A folder copied from the repository: its source, to check what it holds.
            let source = from_repo.then(|| words[0].to_string());
            paths.push((dest, source));
        } else if line.starts_with("RUN ") {
            let words: Vec<&str> = line.split_whitespace().collect();
            for (i, w) in words.iter().enumerate() {
                if *w == "mkdir" && words.get(i + 1) == Some(&"-p") {
                    paths.extend(
                        words[i + 2..]
                            .iter()
                            .take_while(|w| w.starts_with('/'))
                            .map(|w| ((*w).to_string(), None)),
                    );
                }
            }
        }
    }
    paths
}

fn under(path: &str, folder: &str) -> bool {
    path == folder || path.starts_with(&format!("{}/", folder.trim_end_matches('/')))
}

#[test]
fn every_path_passed_to_a_binary_is_in_the_image_or_a_volume_and_data_is_passed_where_needed() {
    let (example, _) = binaries();
    let docs = manifests();
    let lines = containerfile();
    let image = image_paths(&lines);
    let mut help = BTreeMap::new();
    let mut data_folders = BTreeSet::new();
    for (doc, container) in workloads(&docs) {
        let what = format!("{} {}", doc.kind(), doc.name());
        let args = strings(&container["args"]);
        let mounts: Vec<(&str, bool)> = container["volumeMounts"]
            .as_sequence()
            .expect("volumeMounts")
            .iter()
            .map(|m| {
                (
                    m["mountPath"].as_str().expect("mountPath"),
                    m["readOnly"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        for (i, value) in args.iter().enumerate().filter(|(_, a)| a.starts_with('/')) {
            let flag_name = &args[i - 1];
            let in_mount = mounts.iter().find(|(at, _)| under(value, at));
            let in_image = image.iter().any(|(at, _)| under(value, at));
            assert!(
                in_mount.is_some() || in_image,
                "{what}: {flag_name} {value} is neither in the image nor on a volume"
            );
            // The root file system is read-only: what the process writes needs a writable volume.
            if flag_name == "--state" {
                assert_eq!(
                    in_mount.map(|(_, read_only)| *read_only),
                    Some(false),
                    "{what}: {flag_name} {value} must be on a writable volume"
                );
            }
        }
        // The binary's built-in MNIST path points into the builder's /src: every process that
        // loads MNIST (its help lists --data) must name a folder of the image or a volume.
        let command = subcommand(&args);
        let known = help
            .entry(command.join(" "))
            .or_insert_with(|| help_flags(example, &command));
        if known.contains("--data") {
            let data = flag(&args, "--data").unwrap_or_else(|| {
                panic!("{what}: pass --data (the built-in MNIST path is not in the image)")
            });
            data_folders.insert(data.to_string());
        }
    }
    assert!(
        !data_folders.is_empty(),
        "the envoys and the run load MNIST"
    );
    // A data folder from the image holds MNIST: the repository folder it is copied from loads.
    for folder in data_folders {
        if let Some((_, Some(source))) = image.iter().find(|(at, _)| *at == folder) {
            let mnist = flspec_tch::datasets::mnist::Mnist::load(&root().join(source))
                .unwrap_or_else(|e| panic!("--data {folder} (copied from {source}): {e}"));
            assert!(
                !mnist.train.is_empty() && !mnist.test.is_empty(),
                "{source} holds MNIST"
            );
        }
    }
    // The Containerfile's own CMD too.
    let cmd = exec_form(&lines, "CMD");
    for value in cmd.iter().filter(|a| a.starts_with('/')) {
        assert!(
            image.iter().any(|(at, _)| under(value, at)),
            "the CMD's {value} is not in the image"
        );
    }
}

#[test]
fn kustomize_builds_the_manifests_and_one_secret_per_process_when_kubectl_is_here() {
    let (_, flspec_fed) = binaries();
    let tmp = tempfile::tempdir().expect("a temporary folder");
    let k8s = tmp.path().join("k8s");
    fs::create_dir(&k8s).expect("mkdir");
    for entry in fs::read_dir(root().join("deploy/k8s")).expect("deploy/k8s") {
        let path = entry.expect("an entry").path();
        if path.is_file() {
            fs::copy(&path, k8s.join(path.file_name().expect("a name"))).expect("copy");
        }
    }
    make_certs(flspec_fed, &k8s.join("certs"));
    let out = match Command::new("kubectl").arg("kustomize").arg(&k8s).output() {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "SKIPPED: `kubectl kustomize` cannot run here ({e}); install kubectl to check the kustomization"
            );
            return;
        }
    };
    assert!(
        out.status.success(),
        "kubectl kustomize deploy/k8s failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|de| Value::deserialize(de).expect("kustomize's output is YAML"))
        .collect();
    let mut kinds = BTreeMap::<String, usize>::new();
    let mut secret_keys = BTreeMap::new();
    for doc in &docs {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        let name = doc["metadata"]["name"].as_str().expect("name").to_string();
        if kind != "Namespace" {
            assert_eq!(
                doc["metadata"]["namespace"].as_str(),
                Some(NAMESPACE),
                "{kind} {name}"
            );
        }
        if kind == "Secret" {
            let keys: BTreeSet<String> = doc["data"]
                .as_mapping()
                .expect("a Secret's data")
                .keys()
                .map(|k| k.as_str().expect("a key").to_string())
                .collect();
            secret_keys.insert(name, keys);
        }
        *kinds.entry(kind).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        ("Deployment", 3),
        ("Namespace", 1),
        ("PersistentVolumeClaim", 1),
        ("Secret", 4),
        ("Service", 1),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(
        kinds, expected,
        "what `kubectl apply -k deploy/k8s` creates"
    );
    // Every Secret item a pod mounts is in the Secret kustomize made (the Job's, too).
    let manifests = manifests();
    for (doc, _) in workloads(&manifests) {
        for volume in pod_spec(doc)["volumes"].as_sequence().expect("volumes") {
            let Some(secret) = volume["secret"]["secretName"].as_str() else {
                continue;
            };
            let keys = secret_keys
                .get(secret)
                .unwrap_or_else(|| panic!("{}: kustomize makes no Secret {secret}", doc.name()));
            for item in volume["secret"]["items"].as_sequence().expect("items") {
                let key = item["key"].as_str().expect("key");
                assert!(
                    keys.contains(key),
                    "{}: Secret {secret} has no {key}",
                    doc.name()
                );
            }
            assert!(!keys.contains("ca.key"), "Secret {secret} holds the CA key");
        }
    }
}
