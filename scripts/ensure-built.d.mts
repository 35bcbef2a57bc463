export declare const root: string;
export declare const entry: string;
export declare function ensureBuilt(): void;
