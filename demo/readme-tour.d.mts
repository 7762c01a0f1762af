export declare const repoRoot: string;
export declare function tourBlock(markdown: string, name: string): string;
export declare function readmeTour(name: string, readme?: string): string;
