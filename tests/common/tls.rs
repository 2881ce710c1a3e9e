//! A private certificate authority for the TLS tests (HTTPS webhooks, MQTT over TLS): the case a
//! site with its own CA is in, which no public root can stand for.
#![allow(dead_code)]

/// A throw-away CA, made fresh for each test.
pub struct TestCa {
    /// The CA's certificate, for the appliance to trust (`delivery.ca_file`, `mqtt.tls.ca_file`).
    pub pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn generate() -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "FaceCV test CA");
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            pem,
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A certificate signed by this CA for `names` (host names or IP addresses, as the
    /// subject's alternative names), with its key.
    pub fn issue(&self, names: &[&str]) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert, key)
    }
}
