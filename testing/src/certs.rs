//! A certificate authority made on the fly, for the TLS tests.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone)]
pub struct Pem {
    /// The certificate.
    pub cert: String,
    /// The private key.
    pub key: String,
}

/// A certificate authority that signs server and client certificates.
#[derive(Debug)]
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// The CA's own certificate, to trust.
    pub cert: String,
}

/// What went wrong making a certificate.
pub type Error = rcgen::Error;

impl TestCa {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Result<TestCa, Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?.pem();
        Ok(TestCa { issuer: Issuer::new(params, key), cert })
    }

    /// A server certificate for these subjectAltNames (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Result<Pem, Error> {
        self.leaf(names, "server", ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate named `name`.
    pub fn client(&self, name: &str) -> Result<Pem, Error> {
        self.leaf(&[name], name, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A server certificate with a Common Name and **no** subjectAltName, as the tutorial's
    /// openssl scripts make: rustls rejects it.
    pub fn server_cn_only(&self, common_name: &str) -> Result<Pem, Error> {
        self.leaf(&[], common_name, ExtendedKeyUsagePurpose::ServerAuth)
    }

    fn leaf(
        &self,
        names: &[&str],
        common_name: &str,
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<Pem, Error> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?.pem();
        Ok(Pem { cert, key: key.serialize_pem() })
    }
}
