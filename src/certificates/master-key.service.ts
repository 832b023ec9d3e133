import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '../config/config';
import { decryptSecret, encryptSecret, loadOrCreateMasterKey } from './master-key';

/**
 * MASTER_KEY (or the generated DATA_DIR/master.key), loaded once on first use. Encrypts the
 * private keys of the server CA, the server certificate and every tenant CA at rest; the
 * associated data binds each ciphertext to the row it belongs to.
 */
@Injectable()
export class MasterKeyService {
  private readonly logger = new Logger('MasterKey');
  private loaded?: Promise<Buffer>;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  private key(): Promise<Buffer> {
    return (this.loaded ??= this.load());
  }

  private async load(): Promise<Buffer> {
    const loaded = await loadOrCreateMasterKey({ masterKey: this.config.masterKey, dataDir: this.config.dataDir });
    for (const warning of loaded.warnings) this.logger.warn(warning);
    if (loaded.source === 'generated') {
      this.logger.log(`generated a master key in ${loaded.path}: every node of a cluster needs the same MASTER_KEY`);
    }
    return loaded.key;
  }

  async encrypt(plaintext: string, associatedData: string): Promise<string> {
    return encryptSecret(plaintext, await this.key(), associatedData);
  }

  /** Throws SecretDecryptionError when the key or the associated data does not match. */
  async decrypt(ciphertext: string, associatedData: string): Promise<string> {
    return decryptSecret(ciphertext, await this.key(), associatedData);
  }
}
