import { ApiProperty } from '@nestjs/swagger';
import { IsString, Length } from 'class-validator';

export class RegisterClientCertificateDto {
  /** The device's client certificate, PEM (the leaf only). */
  @ApiProperty({ description: 'PEM client certificate issued by the client CA (MQTT_TLS_CLIENT_CA_FILE), naming the device id as CN or SAN' })
  @IsString()
  @Length(64, 16_384)
  certificate!: string;
}
