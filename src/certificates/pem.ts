export const PEM_CONTENT_TYPE = 'application/x-pem-file';

/** A PEM as a file: ends with a newline, so `curl ... >> bundle.pem` concatenates cleanly. */
export const pemFile = (pem: string): string => (pem.endsWith('\n') ? pem : `${pem}\n`);
